"""The RFC 9162 Merkle tree: known answers, the RFC's recursive definitions, pymerkle, and flipped bits."""

from __future__ import annotations

import hashlib

import pytest
from pymerkle import InmemoryTree

from governance.audit import tree
from governance.audit.tree import ProofError


def leaves(n: int) -> list[bytes]:
    return [tree.leaf_hash(f"event {i}".encode()) for i in range(n)]


def mth(d: list[bytes]) -> bytes:
    return tree.root_by_definition(d)


def path_by_definition(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) exactly as RFC 9162 2.1.3.1 writes it."""
    n = len(d)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return path_by_definition(m, d[:k]) + [mth(d[k:])]
    return path_by_definition(m - k, d[k:]) + [mth(d[:k])]


def subproof_by_definition(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) exactly as RFC 9162 2.1.4.1 writes it."""
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return subproof_by_definition(m, d[:k], b) + [mth(d[k:])]
    return subproof_by_definition(m - k, d[k:], False) + [mth(d[:k])]


def h(hex_: str) -> bytes:
    return bytes.fromhex(hex_)


def test_known_answers_from_the_definitions() -> None:
    """Small trees written out by hand from 2.1.1: leaf = H(0x00||d), node = H(0x01||l||r)."""
    sha = hashlib.sha256
    assert tree.root_of([]) == sha(b"").digest()
    assert tree.leaf_hash(b"") == sha(b"\x00").digest()
    a, b, c = (sha(b"\x00" + x).digest() for x in (b"a", b"b", b"c"))
    assert tree.root_of([a]) == a
    ab = sha(b"\x01" + a + b).digest()
    assert tree.root_of([a, b]) == ab
    assert tree.root_of([a, b, c]) == sha(b"\x01" + ab + c).digest()
    # The RFC 6962 test vector leaves (the empty string, 0x00, 0x10, ...) and their published roots,
    # as the Certificate Transparency and Trillian test suites list them.
    data = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    hashes = [tree.leaf_hash(x) for x in data]
    assert hashes[0] == h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    expected_roots = {
        1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    }
    for size, root in expected_roots.items():
        assert tree.root_of(hashes[:size]).hex() == root
        assert mth(hashes[:size]).hex() == root


def test_streaming_root_and_proofs_match_the_recursive_definitions() -> None:
    for n in range(1, 34):
        d = leaves(n)
        assert tree.root_of(d) == mth(d)
        for m in range(n):
            assert tree.inclusion_proof(d, m, n) == path_by_definition(m, d), (m, n)
            tree.verify_inclusion(d[m], m, n, tree.inclusion_proof(d, m, n), mth(d))
        for m in range(1, n + 1):
            expected = subproof_by_definition(m, d, True)
            assert tree.consistency_proof(d, m, n) == expected, (m, n)
            tree.verify_consistency(m, n, mth(d[:m]), mth(d), expected)


def test_known_proofs_of_the_rfc_vectors() -> None:
    """Audit paths and consistency proofs over the RFC 6962 vectors, as the CT test suites list them."""
    data = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    d = [tree.leaf_hash(x) for x in data]
    assert [p.hex() for p in tree.inclusion_proof(d, 0, 8)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert [p.hex() for p in tree.inclusion_proof(d, 5, 8)] == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    assert [p.hex() for p in tree.consistency_proof(d, 1, 8)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert [p.hex() for p in tree.consistency_proof(d, 6, 8)] == [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    assert [p.hex() for p in tree.consistency_proof(d, 2, 5)] == [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]


def test_roots_agree_with_pymerkle() -> None:
    """An independent implementation (pymerkle, RFC 9162 hashing) computes the same roots."""
    entries = [f"event {i}".encode() for i in range(70)]
    other = InmemoryTree(algorithm="sha256")
    for entry in entries:
        other.append_entry(entry)
    d = [tree.leaf_hash(e) for e in entries]
    for size in (1, 2, 3, 5, 8, 13, 31, 32, 33, 64, 70):
        assert tree.root_of(d[:size]) == other.get_state(size), size
    for index in (1, 7, 40, 70):  # pymerkle's leaves are 1-based
        assert other.get_leaf(index) == d[index - 1]
    # pymerkle's audit path is the leaf itself followed by the RFC 9162 path.
    for index, size in ((0, 1), (5, 13), (12, 13), (31, 64), (40, 70)):
        theirs = other.prove_inclusion(index + 1, size).serialize()["path"]
        assert theirs[1:] == [p.hex() for p in tree.inclusion_proof(d, index, size)], (index, size)


def flipped(proof: list[bytes]) -> list[list[bytes]]:
    """Every proof that differs from `proof` in exactly one bit."""
    out = []
    for i, value in enumerate(proof):
        for bit in range(len(value) * 8):
            changed = bytearray(value)
            changed[bit // 8] ^= 1 << (bit % 8)
            out.append([*proof[:i], bytes(changed), *proof[i + 1 :]])
    return out


def test_every_inclusion_proof_with_one_bit_flipped_is_refused() -> None:
    d = leaves(13)
    root = mth(d)
    for m in (0, 5, 12):
        proof = tree.inclusion_proof(d, m, 13)
        tree.verify_inclusion(d[m], m, 13, proof, root)
        for bad in flipped(proof):
            with pytest.raises(ProofError):
                tree.verify_inclusion(d[m], m, 13, bad, root)
        for bad_leaf in flipped([d[m]]):
            with pytest.raises(ProofError):
                tree.verify_inclusion(bad_leaf[0], m, 13, proof, root)
        with pytest.raises(ProofError):
            tree.verify_inclusion(d[m], m ^ 1, 13, proof, root)
        with pytest.raises(ProofError, match="shorter"):
            tree.verify_inclusion(d[m], m, 13, proof[:-1], root)
        with pytest.raises(ProofError):
            tree.verify_inclusion(d[m], m, 13, [*proof, proof[0]], root)


def test_every_consistency_proof_with_one_bit_flipped_is_refused() -> None:
    d = leaves(13)
    for first in (1, 4, 6, 12):
        proof = tree.consistency_proof(d, first, 13)
        tree.verify_consistency(first, 13, mth(d[:first]), mth(d), proof)
        for bad in flipped(proof):
            with pytest.raises(ProofError):
                tree.verify_consistency(first, 13, mth(d[:first]), mth(d), bad)
        with pytest.raises(ProofError):
            tree.verify_consistency(first, 13, mth(d[:first]), mth(d), proof[:-1])
        with pytest.raises(ProofError):
            tree.verify_consistency(first, 13, mth([tree.leaf_hash(b"forged"), *d[1:first]]), mth(d), proof)


def test_bad_questions_are_refused() -> None:
    d = leaves(4)
    with pytest.raises(ProofError, match="not in a tree of 4"):
        tree.inclusion_proof(d, 4, 4)
    with pytest.raises(ProofError, match="fewer than the tree size 5"):
        tree.inclusion_proof(d, 0, 5)
    with pytest.raises(ProofError, match="different root hashes for the same tree size 4"):
        tree.verify_consistency(4, 4, mth(d), mth(d[:3]), [])
    with pytest.raises(ProofError, match="larger than"):
        tree.verify_consistency(5, 4, mth(d), mth(d), [])
    with pytest.raises(ProofError, match="32 bytes"):
        tree.verify_inclusion(d[0], 0, 4, [b"short"], mth(d))


def test_a_builder_resumes_from_its_frontier() -> None:
    d = leaves(45)
    for k in (0, 1, 7, 8, 32, 44):
        first = tree.TreeBuilder()
        for leaf in d[:k]:
            first.append(leaf)
        resumed = tree.TreeBuilder.resume(first.frontier())
        assert resumed.size == k
        for leaf in d[k:]:
            resumed.append(leaf)
        assert resumed.root() == mth(d)
    with pytest.raises(ProofError, match="not the frontier"):
        tree.TreeBuilder.resume([(0, 2, d[0]), (2, 4, d[1])])
    with pytest.raises(ProofError, match="not the frontier"):
        tree.TreeBuilder.resume([(0, 3, d[0])])
