"""Training data from raw videos: face-tracked clips and the clip files `models.training` reads."""
