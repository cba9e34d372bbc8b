"""Recovery from lost hosts: the standing `dead-run-sweep` (steps: plain functions; flow: the Prefect flow)."""
