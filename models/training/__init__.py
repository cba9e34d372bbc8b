"""Training MCNet on talking-face clips: data, augmentation, losses, trainer and held-out evaluation.

Everything here imports torch and the standard library only; decoding videos into the clip files this
package reads is `pipeline.training.frames`' job.
"""
