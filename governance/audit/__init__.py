"""governance.audit.record: see docs/architecture.md for what each module owns."""
