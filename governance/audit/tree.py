"""The RFC 9162 Merkle tree over the audit events: hashes, a streaming root, proofs and their verifiers.

Pure functions over bytes, no database. Leaf hash = SHA-256(0x00 || leaf data), node hash =
SHA-256(0x01 || left || right) (RFC 9162 section 2.1.1); the leaf data of an audit event is the
canonical JSON its chain hash covers (`governance.audit.chain`), so tree and chain commit to the same
bytes. `TreeBuilder` takes leaf hashes one at a time in order and keeps only the roots of the complete
subtrees so far (at most log2(n) of them), which is how a root over millions of events is computed
without holding them. Proofs are made by streaming the leaves once (`inclusion_proof`,
`consistency_proof` take any iterable of leaf hashes) and checked with `verify_inclusion` /
`verify_consistency`, which follow the verification algorithms of RFC 9162 sections 2.1.3.2 and
2.1.4.2 step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = SHA-256() (RFC 9162 2.1.1)

Range = tuple[int, int]  # [start, end) of leaf indices


class ProofError(ValueError):
    """A proof does not verify, or asks about a leaf or size the tree does not have."""


def leaf_hash(data: bytes) -> bytes:
    """MTH of one entry: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """k, the largest power of two smaller than n (n >= 2), where RFC 9162 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


class TreeBuilder:
    """Append leaf hashes in order; `root()` at any moment is MTH of the leaves so far.

    The stack holds (start, size, hash) of complete, aligned subtrees with strictly decreasing
    sizes, i.e. the binary representation of the leaf count. `wanted` names aligned subtrees
    (start, size) whose hashes a proof needs; they are kept in `found` as they complete.
    """

    __slots__ = ("_stack", "found", "size", "wanted")

    def __init__(self, wanted: set[Range] | None = None) -> None:
        self._stack: list[tuple[int, int, bytes]] = []
        self.size = 0
        self.wanted = wanted or set()
        self.found: dict[Range, bytes] = {}

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash, merging equal-sized subtrees (the carry of a binary increment)."""
        stack, wanted = self._stack, self.wanted
        start, size, value = self.size, 1, leaf
        if wanted and (start, 1) in wanted:
            self.found[(start, 1)] = value
        while stack and stack[-1][1] == size:
            left_start, _, left = stack.pop()
            start, size, value = left_start, size * 2, hashlib.sha256(b"\x01" + left + value).digest()
            if wanted and (start, size) in wanted:
                self.found[(start, size)] = value
        stack.append((start, size, value))
        self.size += 1

    def frontier(self) -> tuple[tuple[int, int, bytes], ...]:
        """The complete subtrees so far, (start, size, hash), largest first: all a builder needs to go on."""
        return tuple(self._stack)

    @classmethod
    def resume(cls, frontier: Sequence[tuple[int, int, bytes]]) -> TreeBuilder:
        """A builder that continues after the leaves `frontier` summarises (from `frontier()`)."""
        builder, start = cls(), 0
        for piece_start, size, value in frontier:
            if (
                piece_start != start
                or size & (size - 1)
                or len(value) != HASH_SIZE
                or (builder._stack and builder._stack[-1][1] <= size)
            ):
                raise ProofError(
                    "not the frontier of a tree: subtrees must be aligned, decreasing powers of two"
                )
            builder._stack.append((piece_start, size, value))
            start += size
        builder.size = start
        return builder

    def root(self) -> bytes:
        """MTH of the leaves appended so far: the stack folded from the right."""
        if not self._stack:
            return EMPTY_ROOT
        value = self._stack[-1][2]
        for _, _, left in reversed(self._stack[:-1]):
            value = node_hash(left, value)
        return value


def root_of(leaves: Iterable[bytes]) -> bytes:
    """MTH of a sequence of leaf hashes, streamed."""
    builder = TreeBuilder()
    for leaf in leaves:
        builder.append(leaf)
    return builder.root()


def root_by_definition(leaves: Sequence[bytes]) -> bytes:
    """MTH written as RFC 9162 2.1.1 defines it (recursive): the reference the streaming code is tested on."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _largest_power_of_two_below(n)
    return node_hash(root_by_definition(leaves[:k]), root_by_definition(leaves[k:]))


# -- which subtrees a proof is made of -------------------------------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees whose hashes form PATH(index, D[0:size]) (RFC 9162 2.1.3.1), in proof order."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    ranges: list[Range] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if m < k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m = start + k, m - k
    ranges.reverse()  # the recursion appends on the way back up: the leaf's sibling comes first
    return ranges


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The subtrees whose hashes form PROOF(first, D[0:second]) (RFC 9162 2.1.4.1), in proof order."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    ranges: list[Range] = []
    start, end, m, complete = 0, second, first, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                ranges.append((start, end))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, complete = start + k, m - k, False
    ranges.reverse()
    return ranges


def subtree_pieces(start: int, end: int) -> list[Range]:
    """The aligned complete subtrees a node [start, end) of the tree folds together, left to right."""
    pieces: list[Range] = []
    remaining = end - start
    while remaining:
        size = 1 << (remaining.bit_length() - 1)
        pieces.append((start, size))
        start, remaining = start + size, remaining - size
    return pieces


def range_hashes(leaves: Iterable[bytes], ranges: Sequence[Range], *, size: int) -> list[bytes]:
    """MTH of each range (nodes of the tree of `size` leaves), from one pass over the first `size` leaves."""
    wanted = {piece for start, end in ranges for piece in subtree_pieces(start, end)}
    builder = TreeBuilder(wanted)
    for leaf in leaves:
        if builder.size == size:
            break
        builder.append(leaf)
    if builder.size < size:
        raise ProofError(f"the log holds {builder.size} leaves, fewer than the tree size {size}")
    return [fold([builder.found[piece] for piece in subtree_pieces(start, end)]) for start, end in ranges]


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a node from its aligned complete subtrees (left to right): folded from the right."""
    value = hashes[-1]
    for left in reversed(hashes[:-1]):
        value = node_hash(left, value)
    return value


def inclusion_proof(leaves: Iterable[bytes], index: int, size: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree of the first `size` leaves."""
    return range_hashes(leaves, inclusion_ranges(index, size), size=size)


def consistency_proof(leaves: Iterable[bytes], first: int, second: int) -> list[bytes]:
    """The proof that the tree of `first` leaves is a prefix of the tree of `second` leaves."""
    if first == second:
        return []
    return range_hashes(leaves, consistency_ranges(first, second), size=second)


# -- verifiers (RFC 9162 2.1.3.2 and 2.1.4.2) -----------------------------------------------------------------


def _check_hashes(*values: bytes) -> None:
    for value in values:
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ProofError("a proof hash is not 32 bytes")


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise `ProofError` unless `proof` shows leaf hash `leaf` at `index` in the tree (`size`, `root`)."""
    _check_hashes(leaf, root, *proof)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not below the tree size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root hash")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise `ProofError` unless `proof` shows tree (`first`, `first_root`) is a prefix of (`second`, ...)."""
    _check_hashes(first_root, second_root, *proof)
    if not 0 <= first <= second:
        raise ProofError(f"tree size {first} is larger than tree size {second}")
    if first == second:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError(f"two different root hashes for the same tree size {first}")
        return
    if first == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the first tree is a complete subtree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the tree is deep")
    if fr != first_root:
        raise ProofError(f"consistency proof does not lead to the root hash at size {first}")
    if sr != second_root:
        raise ProofError(f"consistency proof does not lead to the root hash at size {second}")
