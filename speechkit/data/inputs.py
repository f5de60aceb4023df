"""Audio named on a command line -> lhotse cuts: audio files, a Kaldi ``wav.scp``, a manifest.

``speechkit decode`` and ``speechkit transcribe`` take their inputs the same way, so both
decode the same audio (``speechkit.data.audio.load_audio`` on each cut) and name it alike:

* a file ``a.wav`` -> one cut with id ``a.wav`` (as given; a name is always a file name, never a
  command, even when it ends in ``|``);
* each line ``utt value`` of a ``wav.scp`` -> one cut with id ``utt`` (``value`` a file, or a
  ``command |`` pipe, run only with ``allow_pipes``: see ``speechkit.data.kaldi``);
* each cut of a lhotse manifest, as it is.

An input that cannot be opened (missing, empty, not audio, a failing command) is returned as an
``AudioError`` naming it, so the caller reports it and decodes the rest; a ``wav.scp`` that holds
a pipe without ``allow_pipes`` is refused as a whole (``KaldiDataError``) before anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from speechkit.data.audio import AudioError, open_recording
from speechkit.data.kaldi import probe_recording, read_wav_scp

__all__ = ["Inputs", "collect_inputs"]


@dataclass
class Inputs:
    """``cuts``: lhotse cuts in the order given (files, then the wav.scp, then the manifest);
    ``errors``: the inputs that could not be opened."""

    cuts: list = field(default_factory=list)
    errors: list[AudioError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cuts) + len(self.errors)


def collect_inputs(
    files: Sequence[str | Path] = (),
    wav_scp: str | Path | None = None,
    cuts: str | Path | None = None,
    allow_pipes: bool = False,
) -> Inputs:
    """Reads every input (see the module docstring); only headers are read, not samples."""
    out = Inputs()
    for f in files:
        try:
            out.cuts.append(open_recording(f, str(f)).to_cut())
        except AudioError as e:
            out.errors.append(e)
    if wav_scp is not None:
        for _, utt, value in read_wav_scp(wav_scp, allow_pipes):
            try:
                out.cuts.append(probe_recording(utt, value).to_cut())
            except AudioError as e:
                out.errors.append(e)
    if cuts is not None:
        from lhotse import CutSet

        out.cuts += list(CutSet.from_file(cuts))
    return out
