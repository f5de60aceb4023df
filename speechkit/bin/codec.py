"""Encode audio into codec codes, decode codes into audio, pack a trained codec.

    speechkit codec encode --model exp/codec/packed --kbps 3 --cuts data/cuts_test.jsonl.gz \\
        --out data/codes_test          # -> data/codes_test/cuts.jsonl.gz + codes/ (lhotse arrays)
    speechkit codec encode --model exp/codec/packed --out codes/ a.wav b.flac   # -> codes/a.npy ...
    speechkit codec decode --model exp/codec/packed --cuts data/codes_test/cuts.jsonl.gz \\
        --out data/resynth_test        # -> FLAC per cut + cuts.jsonl.gz of the decoded audio
    speechkit codec decode --model exp/codec/packed --out wavs/ codes/a.npy     # -> wavs/a.flac
    speechkit codec pack --checkpoint exp/codec/model_avg.pt --out exp/codec/packed

Codes of a cut set are stored beside the new manifest as lhotse ``TemporalArray`` features
(int16, (codebooks, frames), frame shift = the codec's hop) under ``cut.custom["codec_codes"]``;
the cut keeps its supervisions, and ``cut.custom["codec"]`` records the model and bitrate. Codes
of a file are an ``.npy`` int16 array (codebooks, frames). Decoded cuts point at new 16 kHz
FLAC recordings (starting at the cut's start) and keep the supervisions and custom fields.
Audio of any rate and channel count is read mono at the codec's rate.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from lhotse import CutSet, MonoCut, Recording
from lhotse.features.io import NumpyFilesWriter
from lhotse.utils import fastcopy
from tqdm import tqdm

from speechkit import codec as codec_api
from speechkit.data.audio import AudioError, load_audio

logger = logging.getLogger("speechkit.bin.codec")

CODES_KEY = "codec_codes"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speechkit codec", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("encode", "decode"):
        s = sub.add_parser(name, help=f"{name} files or a cut set")
        s.add_argument("--model", required=True, help="packed codec, checkpoint or zoo name")
        s.add_argument("--cuts", help="lhotse cut manifest (instead of files)")
        s.add_argument("--out", required=True, help="output directory")
        s.add_argument("files", nargs="*", help="audio files (encode) or .npy codes (decode)")
        s.add_argument("--device", default="cpu")
        s.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    enc = sub.choices["encode"]
    enc.add_argument("--kbps", type=float, help="bitrate (default: every codebook)")
    enc.add_argument("--n-q", type=int, help="codebooks to keep (instead of --kbps)")
    pk = sub.add_parser("pack", help="pack a codec training checkpoint")
    pk.add_argument("--checkpoint", required=True)
    pk.add_argument("--out", required=True)
    return p


def encode_cuts(
    codec: codec_api.CodecModel, cuts: CutSet, out: Path, n_q: int, model: str
) -> CutSet:
    """Codes of every cut, stored under ``out/codes``; returns the cuts that carry them."""
    shift = codec.cfg.hop / codec.sample_rate
    done, skipped = [], 0
    with NumpyFilesWriter(out / "codes") as writer:
        for cut in tqdm(cuts, desc="encode"):
            try:
                wave = load_audio(cut, codec.sample_rate)
            except AudioError as e:
                logger.warning("skipped: %s", e)
                skipped += 1
                continue
            codes = codec.encode(wave, n_q=n_q)[0].numpy().astype(np.int16)  # (n, T)
            array = writer.store_array(
                cut.id, codes, frame_shift=shift, temporal_dim=1, start=cut.start
            )
            custom = {
                **(cut.custom or {}),
                CODES_KEY: array,
                "codec": {"model": model, "n_q": n_q, "kbps": codec.bitrates()[n_q]},
            }
            done.append(fastcopy(cut, custom=custom))
    if skipped:
        logger.warning("%d cuts skipped (unreadable audio)", skipped)
    return CutSet.from_cuts(done)


def decode_cuts(codec: codec_api.CodecModel, cuts: CutSet, out: Path) -> CutSet:
    """Audio of every cut's codes as FLAC files in ``out``; returns cuts of that audio."""
    done = []
    for cut in tqdm(cuts, desc="decode"):
        if not cut.has_custom(CODES_KEY):
            raise ValueError(f"cut {cut.id} has no {CODES_KEY!r}: encode the cut set first")
        codes = torch.from_numpy(cut.load_custom(CODES_KEY).astype(np.int64))
        wave = codec.decode(codes)[0].numpy()
        path = out / f"{cut.id}.flac"
        sf.write(path, wave, codec.sample_rate)
        rec = Recording.from_file(path, recording_id=cut.id)
        # (a cut's supervision times are already relative to the cut's start)
        sups = [fastcopy(s, recording_id=cut.id) for s in cut.supervisions]
        custom = {k: v for k, v in (cut.custom or {}).items() if k != CODES_KEY}
        duration = min(rec.duration, cut.duration)
        done.append(
            MonoCut(cut.id, 0.0, duration, 0, recording=rec, supervisions=sups, custom=custom)
        )
    return CutSet.from_cuts(done)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.command == "pack":
        codec_api.pack(args.checkpoint, out)
        return 0
    if bool(args.cuts) == bool(args.files):
        parser.error("give either --cuts or audio/code files")
    torch.set_num_threads(args.threads)
    codec = codec_api.load(args.model, device=args.device)
    out.mkdir(parents=True, exist_ok=True)
    if args.command == "encode":
        n_q = codec.n_quantizers(args.kbps, args.n_q)
        logger.info("encoding with %d codebooks (%.2f kbps)", n_q, codec.bitrates()[n_q])
        if args.cuts:
            result = encode_cuts(codec, CutSet.from_file(args.cuts), out, n_q, args.model)
            result.to_file(out / "cuts.jsonl.gz")
            logger.info("%d cuts with codes -> %s", len(result), out / "cuts.jsonl.gz")
        for f in map(Path, args.files):
            codes = codec.encode_file(f, n_q=n_q)[0].numpy().astype(np.int16)
            np.save(out / f"{f.stem}.npy", codes)
        return 0
    if args.cuts:
        result = decode_cuts(codec, CutSet.from_file(args.cuts), out)
        result.to_file(out / "cuts.jsonl.gz")
        logger.info("%d decoded cuts -> %s", len(result), out / "cuts.jsonl.gz")
    for f in map(Path, args.files):
        wave = codec.decode(torch.from_numpy(np.load(f).astype(np.int64)))[0].numpy()
        sf.write(out / f"{f.stem}.flac", wave, codec.sample_rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
