"""Tiny CIFAR-10 classifiers (search, train, evaluate) and a small latent diffusion model."""

from trainer.runtime import quiet_tf

# Before any submodule imports TensorFlow: a command's error is then the only line a user reads.
quiet_tf()
