"""pipeline.storage.objects: see docs/architecture.md for what each module owns."""
