"""How flows run: settings, the composition root, retries, the `gpu` slot, heartbeats, the local Prefect API."""
