"""flows.review.steps: see docs/architecture.md for what each module owns."""
