"""Consent, policy, job states, review and the tamper-evident audit log, on SQLAlchemy 2. No torch, no Prefect."""
