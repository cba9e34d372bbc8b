"""pipeline.video.reader: see docs/architecture.md for what each module owns."""
