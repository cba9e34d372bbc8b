"""pipeline.training: see docs/architecture.md for what each module owns."""
