"""pipeline.faces.portrait: see docs/architecture.md for what each module owns."""
