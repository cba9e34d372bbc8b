"""One job from consent to the policy's outcome: `flow.py` (`render-job` and its tasks), `steps.py`, `checks.py`."""
