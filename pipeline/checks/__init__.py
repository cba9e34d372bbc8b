"""pipeline.checks: see docs/architecture.md for what each module owns."""
