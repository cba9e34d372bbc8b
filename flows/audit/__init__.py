"""The audit log's signed checkpoints: `checkpoints.py` signs and stores tree heads, `flow.py` schedules it."""
