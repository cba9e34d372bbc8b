"""Throttle failed sign-ins per account and per client address (a sliding window in memory).

Both keys count: one address guessing many accounts, and many addresses guessing one account, are both
stopped. Successful sign-ins do not clear an address's count (that would let an attacker interleave a
known account), only the account's own.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta


class SignInThrottle:
    """Counts failures per key within `window`; `retry_after` says how long a blocked key must wait.

    Keys are `kind:value` (`account:ada@example.org`, `client:203.0.113.7`); `limits` gives each kind its
    own number of failures allowed in the window.
    """

    def __init__(self, *, limits: dict[str, int], window: timedelta, clock: Callable[[], datetime]) -> None:
        self._limits = dict(limits)
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def retry_after(self, *keys: str) -> int:
        """Seconds until the most blocked of `keys` may try again; 0 when none is blocked."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self._limit(key):
                    wait = max(wait, (times[0] + self._window - now).total_seconds())
        return max(0, int(wait) + (1 if wait > int(wait) else 0))

    def failed(self, *keys: str) -> None:
        """Record one failed attempt against every key."""
        now = self._clock()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, key: str) -> None:
        """Forget an account's failures once its owner got in."""
        with self._lock:
            self._failures.pop(key, None)

    def _limit(self, key: str) -> int:
        return self._limits[key.split(":", 1)[0]]

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] >= self._window:
            times.popleft()
        return times
