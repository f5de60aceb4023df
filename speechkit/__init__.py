"""speechkit: an open speech foundation model toolkit (OWSM/Whisper-style models in PyTorch)."""

__version__ = "0.1.0"


def transcribe(*args, **kwargs):
    """``speechkit.inference.transcribe`` (imported on first use, so ``import speechkit`` stays
    light): ``transcribe(audio_or_paths, model="whisper-base", beam=5, language=None,
    task="transcribe") -> list[Result]``."""
    from speechkit.inference import transcribe as _transcribe

    return _transcribe(*args, **kwargs)
