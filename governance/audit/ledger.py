"""The audit tree over the stored events: tree heads, inclusion proofs, and verification against checkpoints.

Everything streams the events in `seq` order (`governance.audit.verify.stored_rows`) and keeps only the
O(log n) subtree roots of `governance.audit.tree.TreeBuilder`, so it runs over millions of events in
constant memory. Leaf `i` (0-based) is event `#i+1`. A tree head is only computed over a chain that
links (a checkpoint never signs a broken log), and `verify_log` checks the chain, the tree at every
checkpoint's size and the consistency of each checkpoint with the next in one pass, naming the first
event or checkpoint that disagrees.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from hashlib import sha256

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit.chain import GENESIS_HASH
from governance.audit.note import Checkpoint, NoteError, NoteVerifier, open_checkpoint
from governance.audit.query import chain_head
from governance.audit.tree import (
    EMPTY_ROOT,
    ProofError,
    TreeBuilder,
    consistency_ranges,
    fold,
    inclusion_ranges,
    leaf_hash,
    subtree_pieces,
    verify_consistency,
    verify_inclusion,
)
from governance.audit.verify import linked_leaf_data, stored_rows
from governance.errors import GovernanceError
from governance.schema import AuditEvent


class AuditLogBroken(GovernanceError):
    """The stored chain does not link, so no tree head or proof is given over it."""


@dataclass(frozen=True)
class TreeHead:
    """The tree over events #1..#size: its root, the chain hash of its last event, and its frontier
    (the complete subtrees, from which the next head is computed over the new events only)."""

    size: int
    root: bytes
    head_hash: str | None
    frontier: tuple[tuple[int, int, bytes], ...] = ()

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root).decode("ascii")


def _linked_leaves(
    session: Session,
    max_seq: int | None,
    *,
    after: tuple[int, str] | None = None,
) -> Iterator[tuple[int, str, bytes]]:
    """(seq, hash, leaf hash) of each event (after event `after` = (seq, hash), if given), checking every
    link; `AuditLogBroken` at the first break."""
    expected, prev = (after[0] + 1, after[1]) if after else (1, GENESIS_HASH)
    for row, occurred_at in stored_rows(session, max_seq=max_seq, min_seq=expected):
        problem, data = linked_leaf_data(row, occurred_at, expected, prev)
        if problem:
            raise AuditLogBroken(f"audit chain broken at event #{row[0]} ({row[1]}): {problem}")
        yield expected, row[11], leaf_hash(data)
        expected, prev = expected + 1, row[11]


def tree_head(session: Session, *, size: int | None = None, since: TreeHead | None = None) -> TreeHead:
    """The tree over the first `size` events (all committed ones by default), from one linked pass.

    With `since` (an earlier head of this log, e.g. the last one signed), only the events after it are
    read, provided its last event still has the hash it had; otherwise the whole log is read again.
    """
    if size is None:
        head = chain_head(session)
        size = head[0] if head else 0
    builder, last_hash, after = TreeBuilder(), None, None
    if since is not None and 0 < since.size <= size and since.head_hash is not None:
        stored = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == since.size))
        if stored == since.head_hash:
            builder, last_hash, after = (
                TreeBuilder.resume(since.frontier),
                since.head_hash,
                (since.size, since.head_hash),
            )
    for _, hash_, leaf in _linked_leaves(session, size, after=after):
        builder.append(leaf)
        last_hash = hash_
    if builder.size != size:
        raise AuditLogBroken(f"the log holds {builder.size} events, not the {size} asked for")
    return TreeHead(size, builder.root() if size else EMPTY_ROOT, last_hash, builder.frontier())


@dataclass(frozen=True)
class InclusionProof:
    """Event #seq is leaf seq-1 of the tree of `size` leaves; `path` leads from its leaf hash to `root`."""

    event_id: str
    seq: int
    size: int
    leaf: bytes
    path: tuple[bytes, ...]
    root: bytes

    def verify(self) -> None:
        """Raise `ProofError` unless the path leads to the root (RFC 9162 2.1.3.2)."""
        verify_inclusion(self.leaf, self.seq - 1, self.size, self.path, self.root)

    def as_dict(self) -> dict[str, object]:
        """Plain data for people and tools: hashes in base64, like the checkpoint's root."""
        enc = base64.b64encode
        return {
            "event_id": self.event_id,
            "seq": self.seq,
            "leaf_index": self.seq - 1,
            "tree_size": self.size,
            "leaf_hash": enc(self.leaf).decode(),
            "root_hash": enc(self.root).decode(),
            "inclusion_path": [enc(p).decode() for p in self.path],
        }


def prove_inclusion(session: Session, *, event_id: str, seq: int, size: int) -> InclusionProof:
    """The inclusion proof of event #seq in the tree of the first `size` events (checked before returning)."""
    ranges = inclusion_ranges(seq - 1, size)
    wanted = {piece for start, end in ranges for piece in subtree_pieces(start, end)}
    builder, own = TreeBuilder(wanted), b""
    for number, _, leaf in _linked_leaves(session, size):
        if number == seq:
            own = leaf
        builder.append(leaf)
    if builder.size != size:
        raise AuditLogBroken(f"the log holds {builder.size} events, fewer than the checkpoint's {size}")
    path = [fold([builder.found[p] for p in subtree_pieces(start, end)]) for start, end in ranges]
    proof = InclusionProof(event_id, seq, size, own, tuple(path), builder.root())
    proof.verify()
    return proof


# -- verification against checkpoints ---------------------------------------------------------------------


@dataclass(frozen=True)
class StoredNote:
    """A checkpoint note as found outside the database, and where (object key and version)."""

    label: str
    text: str


@dataclass(frozen=True)
class LogReport:
    """What checking the chain, the tree and the checkpoints found; the first disagreement is named."""

    ok: bool
    checked: int
    checkpoints: int
    head_seq: int | None
    head_hash: str | None
    root: bytes | None = None
    broken_seq: int | None = None
    broken_id: str | None = None
    checkpoint: str | None = None
    problem: str | None = None

    @property
    def message(self) -> str:
        """One line for people."""
        if self.ok:
            root = base64.b64encode(self.root or EMPTY_ROOT).decode()
            return (
                f"audit log intact: {self.checked} events, head #{self.head_seq} {self.head_hash}, "
                f"tree root {root}, {self.checkpoints} checkpoint(s) match"
            )
        if self.checkpoint is not None:
            return f"audit log disagrees with checkpoint {self.checkpoint}: {self.problem}"
        if self.broken_seq is not None:
            return f"audit chain broken at event #{self.broken_seq} ({self.broken_id}): {self.problem}"
        return f"audit log check failed: {self.problem}"


def open_notes(
    notes: Sequence[StoredNote], verifier: NoteVerifier
) -> tuple[list[tuple[StoredNote, Checkpoint]], LogReport | None]:
    """Check every note's signature and form; sorted by size; a failure names the note."""
    opened: list[tuple[StoredNote, Checkpoint]] = []
    for note in notes:
        try:
            opened.append((note, open_checkpoint(verifier, note.text)))
        except NoteError as exc:
            return [], LogReport(False, 0, len(notes), None, None, checkpoint=note.label, problem=str(exc))
    opened.sort(key=lambda pair: (pair[1].size, pair[0].label))
    for (a, ca), (b, cb) in zip(opened, opened[1:], strict=False):
        if ca.size == cb.size and ca.root != cb.root:
            return [], LogReport(
                False,
                0,
                len(notes),
                None,
                None,
                checkpoint=b.label,
                problem=f"signs size {cb.size} with another root than {a.label} (a fork)",
            )
    return opened, None


# (seq, event id, stored hash, why it breaks the chain or None, leaf hash or None): what the checker reads.
EventLink = tuple[int, str, str, str | None, bytes | None]


def stored_links(session: Session) -> Iterator[EventLink]:
    """The stored events as links, ending at the first one that breaks the chain."""
    expected, prev = 1, GENESIS_HASH
    for row, occurred_at in stored_rows(session):
        problem, data = linked_leaf_data(row, occurred_at, expected, prev)
        yield int(row[0]), row[1], row[11], problem, None if problem else sha256(b"\x00" + data).digest()
        if problem:
            return
        expected, prev = expected + 1, row[11]


def verify_log(session: Session, notes: Sequence[StoredNote], verifier: NoteVerifier) -> LogReport:
    """Walk the stored chain and build the tree, checking it against every checkpoint (`check_links`)."""
    return check_links(stored_links(session), notes, verifier)


def check_links(links: Iterable[EventLink], notes: Sequence[StoredNote], verifier: NoteVerifier) -> LogReport:
    """The chain must link; the root at each checkpoint's size must be the signed one; each checkpoint
    must be consistent with the next (RFC 9162 2.1.4.2, with the proof made from the events).
    """
    opened, failure = open_notes(notes, verifier)
    if failure is not None:
        return failure
    distinct: list[tuple[StoredNote, Checkpoint]] = []
    for pair in opened:
        if pair[1].size > 0 and (not distinct or distinct[-1][1].size != pair[1].size):
            distinct.append(pair)
    pairs = [(a[1].size, b[1].size) for a, b in zip(distinct, distinct[1:], strict=False)]
    pair_ranges = [consistency_ranges(m, n) for m, n in pairs]
    wanted = {
        piece for ranges in pair_ranges for start, end in ranges for piece in subtree_pieces(start, end)
    }
    builder = TreeBuilder(wanted)
    by_size = {cp.size: (note, cp) for note, cp in distinct}
    matched = 0  # size of the last checkpoint that matched
    count, prev = 0, None
    for seq, event_id, stored_hash, problem, leaf in links:
        if problem or leaf is None:
            return LogReport(
                False,
                count,
                len(notes),
                count or None,
                prev,
                broken_seq=seq,
                broken_id=event_id,
                problem=problem,
            )
        builder.append(leaf)
        count, prev = count + 1, stored_hash
        found = by_size.get(count)
        if found is not None:
            note, cp = found
            if builder.root() != cp.root:
                return LogReport(
                    False,
                    count,
                    len(notes),
                    count,
                    prev,
                    checkpoint=note.label,
                    problem=(
                        f"the tree over events #1..#{cp.size} has another root than the signed one: events "
                        f"#{matched + 1}..#{cp.size} are not what was signed (history rewritten)"
                    ),
                )
            matched = cp.size
    for note, cp in distinct:
        if cp.size > count:
            missing = f"#{count + 1}" if cp.size == count + 1 else f"#{count + 1}..#{cp.size}"
            return LogReport(
                False,
                count,
                len(notes),
                count or None,
                prev,
                checkpoint=note.label,
                problem=f"it covers {cp.size} events, the log holds {count}: {missing} missing (deleted?)",
            )
    for (first, second), ranges, (note_a, cp_a), (note_b, cp_b) in zip(
        pairs, pair_ranges, distinct, distinct[1:], strict=False
    ):
        proof = [fold([builder.found[p] for p in subtree_pieces(start, end)]) for start, end in ranges]
        try:
            verify_consistency(first, second, cp_a.root, cp_b.root, proof)
        except ProofError as exc:
            return LogReport(
                False,
                count,
                len(notes),
                count or None,
                prev,
                checkpoint=note_b.label,
                problem=f"not consistent with checkpoint {note_a.label}: {exc}",
            )
    return LogReport(True, count, len(notes), count or None, prev, root=builder.root())
