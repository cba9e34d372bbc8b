"""Revocation and takedown: `steps.py` (revoke, amend, take down what is due), `flow.py` (the `takedown` sweep)."""
