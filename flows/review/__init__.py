"""The human gate: `steps.py` applies a decision, `queue.py` shows what waits, `flow.py` sweeps overdue reviews."""
