"""Tiny CIFAR-10 classifiers (search, train, evaluate) and a small latent diffusion model."""

import os

# Quiet TensorFlow's C++ start-up chatter for every entry point; users can override it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
