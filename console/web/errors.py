"""The console's own refusals; each becomes a page with a one-line message and the right status code."""

from __future__ import annotations


class ConsoleError(Exception):
    """Base: `status` is the HTTP status the page is served with."""

    status = 400


class SignInRequired(ConsoleError):
    """No live session: the visitor is sent to the sign-in page."""

    status = 401


class Forbidden(ConsoleError):
    """Signed in, but none of the user's roles may use this route."""

    status = 403


class CsrfRejected(ConsoleError):
    """A state-changing request without the session's CSRF token, or from another origin."""

    status = 403


class TooManyAttempts(ConsoleError):
    """Failed sign-ins throttled; `retry_after` seconds must pass."""

    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UploadRejected(ConsoleError):
    """An uploaded file of the wrong type, empty, or unreadable."""

    status = 415


class BadInput(ConsoleError):
    """A form field that cannot be used as given (missing reason, malformed date...)."""

    status = 422


class PageNotFound(ConsoleError):
    """An id that names nothing the console can show."""

    status = 404


class StorageUnavailable(ConsoleError):
    """The object store could not be reached; the action may be retried later."""

    status = 503
