"""speechkit: an open speech foundation model toolkit (OWSM/Whisper-style models in PyTorch)."""

__version__ = "0.1.0"
