"""MCNet in PyTorch: configuration, networks, checkpoint loading, inference and training. Imports torch only."""
