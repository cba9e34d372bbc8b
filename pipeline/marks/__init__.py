"""pipeline.marks: see docs/architecture.md for what each module owns."""
