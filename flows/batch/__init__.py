"""flows.batch.flow: see docs/architecture.md for what each module owns."""
