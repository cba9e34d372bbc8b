"""One module per command group of the `likeness` CLI."""
