"""flows.runtime.root: see docs/architecture.md for what each module owns."""
