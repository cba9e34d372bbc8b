"""The audit log: events (`record.py`), the hash chain, the Merkle tree, signed notes, queries, verification, bundles."""
