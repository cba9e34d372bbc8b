"""Human interfaces: the `likeness` CLI and the web console."""
