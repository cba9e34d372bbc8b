"""Checks of a render: identity, artifacts, motion and driver leak, each a score and a verdict against thresholds."""
