"""flows.takedown.flow: see docs/architecture.md for what each module owns."""
