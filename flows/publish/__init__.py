"""Delivery: `flow.py` (`publish-job`, `publish-approved`), `steps.py`, marks and upload (`delivery.py`), the queue, `verify`."""
