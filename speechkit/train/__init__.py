"""Training: configs, optimiser and schedules, checkpoints, and the training loop.

Submodules are imported where used (``from speechkit.train.trainer import Trainer``) so that
loading a checkpoint does not pull in the whole loop.
"""
