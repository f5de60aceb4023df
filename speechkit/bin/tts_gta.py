"""Teacher-forced ("ground-truth aligned") mels of an acoustic model, stored with the cuts, for
fine-tuning a vocoder on what the acoustic model really predicts (HiFi-GAN's recipe).

Usage::

    python -m speechkit.bin.tts_gta --model exp/fs2/model_avg.pt \\
        --cuts data/tts/cuts_train.jsonl.gz --out data/tts/gta_train     # or: speechkit tts-gta

For every cut, the acoustic model runs as in training (``FastSpeech2.forward``, eval mode): the
aligner's durations on the cut's own mel, the pitch and energy measured on its audio. Its output
mel therefore has the frames of the recording, frame f centred on sample f * hop, and a vocoder
can learn to turn it into that recording (``input_mel_field: gta_mel`` in the vocoder's config,
``speechkit/tasks/vocoder.py``). Writes ``OUT/mels/`` (one array per cut, (frames, bands)
float32) and ``OUT/cuts.jsonl.gz`` (the cuts, each with its array under ``gta_mel``). A cut the
model cannot take (unknown speaker or language, text it cannot phonemise, unreadable audio,
fewer frames than phonemes) is left out, counted by reason and reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet
from lhotse.features.io import NumpyFilesWriter
from lhotse.utils import fastcopy
from tqdm import tqdm

from speechkit.config import from_dict
from speechkit.data.tts import TTSDataConfig, TTSDataset
from speechkit.tasks.base import read_cuts
from speechkit.tts.acoustic import AcousticModel

GTA_FIELD = "gta_mel"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speechkit tts-gta",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="acoustic model checkpoint (model_avg.pt)")
    p.add_argument("--cuts", required=True, nargs="+", help="cut manifests (with audio)")
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument("--threads", type=int, default=1)
    return p


@torch.inference_mode()
def teacher_forced(am: AcousticModel, batch: dict) -> list[torch.Tensor]:
    """The model's mel (M, T_i) for each row of a ``TTSDataset`` batch, T_i = the row's frames."""
    out = am.model(
        batch["phonemes"], batch["phoneme_lens"], batch["speakers"], batch["languages"],
        batch["mel"], batch["mel_lens"], batch["pitch"], batch["voiced"],
    )  # fmt: skip
    return [out.mel[i, :, :t] for i, t in enumerate(batch["mel_lens"].tolist())]


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if not Path(args.model).is_file():
        p.error(f"--model {args.model}: no such file (a tts checkpoint such as model_avg.pt)")
    torch.set_num_threads(args.threads)
    try:
        am = AcousticModel.load(args.model)
        cuts = read_cuts(args.cuts)
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    cfg = am.model.cfg
    # Pitch and voicing as the model was trained with (its checkpoint's data section).
    data_cfg = from_dict(TTSDataConfig, {**am.data, "num_workers": 0},
                         source=f"{args.model}:config.data")  # fmt: skip
    data = TTSDataset(am.vocab, cfg.speakers, cfg.languages, am.mel, data_cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shift = am.mel.hop_length / am.mel.sample_rate
    done, seen = [], 0
    with NumpyFilesWriter(out / "mels") as writer:
        for cut in tqdm(cuts, desc="teacher-forced mels"):
            seen += 1
            batch = data[CutSet.from_cuts([cut])]
            if batch is None:  # the dataset logged and counted why
                continue
            mel = teacher_forced(am, batch)[0].T.numpy().astype(np.float32)  # (T, M)
            array = writer.store_array(cut.id, mel, frame_shift=shift, temporal_dim=0,
                                       start=cut.start)  # fmt: skip
            done.append(fastcopy(cut, custom={**(cut.custom or {}), GTA_FIELD: array}))
    if not done:
        sys.exit(f"no cut of {' '.join(args.cuts)} could be taken: {dict(data.skipped)}")
    CutSet.from_cuts(done).to_file(out / "cuts.jsonl.gz")
    report = {"cuts": seen, "written": len(done), "skipped": dict(data.skipped)}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
