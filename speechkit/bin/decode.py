"""Decode a cut manifest with a trained model: ASR and/or ST hypotheses per task and language pair.

Usage::

    python -m speechkit.bin.decode --model exp/run/packed --cuts data/test.jsonl.gz --out exp/dec \\
        [--tasks auto|asr|st_deu,...] [--beam-size 5] [--ctc-weight 0.3] [--batch-duration 200] \\
        [--st-prompt none|asr|both|auto] [--device auto] [--max-utts N]

``--tasks auto`` decodes the tasks the model was trained for (ASR languages and ST directions
recorded in its config) that the cut has a reference for; for a model without that record, ASR
and ST into every language the cut has a translation for and the tokenizer has a token for. Output, one directory
per task and direction (``DIR/asr_eng/``, ``DIR/st_eng-deu/``)::

    hyp.txt  ref.txt   Kaldi style: "<cut_id> <text>" per line
    hyps.jsonl         {"id", "hyp", "ref", "score"} per line

and ``DIR/decode_stats.json`` with speed (RTF = wall / audio seconds; RTFx = its inverse) and the
cuts skipped for unreadable audio. Score the result with ``python -m speechkit.bin.score``.

Two-pass translation (``--st-prompt asr``; for models trained with ``data.st_source_prompt``):
each cut is transcribed first (with CTC prefix scoring), then translated with ``<sop>`` and that
transcript as the decoder prompt. ``both`` writes the direct translations to ``st_eng-deu/``
and the two-pass ones to ``st_eng-deu.2pass/``; ``auto`` (default) is ``both`` for a model trained
with source prompts and ``none`` otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from speechkit.config import ConfigError, to_dict
from speechkit.data.tasks import cut_tasks
from speechkit.decode import DecodeOptions, SpecialIds, beam_search, greedy_search

logger = logging.getLogger("speechkit.bin.decode")


@dataclass
class Item:
    """One (cut, task) to decode: the cut's index in its batch, the output directory name, the
    decoder prefix and the reference text."""

    index: int
    cut_id: str
    subdir: str
    prefix: list[int]
    ref: str
    output: bool = True  # False: a first-pass transcript needed only as a prompt


ST_PROMPT_MODES = ("none", "asr", "both", "auto")
TWO_PASS_SUFFIX = ".2pass"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="packed model directory or checkpoint .pt")
    p.add_argument("--cuts", required=True, help="lhotse cut manifest (.jsonl or .jsonl.gz)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--tasks", default="auto", help="auto, or a comma list: asr,st_deu,...")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--ctc-weight", type=float, default=0.0)
    p.add_argument("--ctc-top-k", type=int, default=20)
    p.add_argument("--length-penalty", type=float, default=0.0)
    p.add_argument("--no-length-norm", action="store_true", help="rank by summed log-prob")
    p.add_argument("--max-len", type=int, default=200, help="max output tokens")
    p.add_argument("--max-len-ratio", type=float, default=1.0, help="max tokens per enc frame")
    p.add_argument("--batch-duration", type=float, default=200.0, help="audio seconds per batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--max-utts", type=int, default=None, help="decode only the first N cuts")
    p.add_argument("--st-prompt", default="auto", choices=ST_PROMPT_MODES,
                   help="translate with the cut's first-pass transcript as prompt (see above)")  # fmt: skip
    return p.parse_args(argv)


def cut_items(
    cut, index: int, tasks: list[str] | None, tok, trained: dict | None = None
) -> list[Item]:
    """The (task, direction) items of one cut; ``tasks`` None means auto (see module doc):
    the tasks the model was trained for (``trained``) where known, else every task of the
    tokenizer that the cut has a reference for."""
    if not cut.supervisions or cut.supervisions[0].language not in tok.languages:
        logger.warning("skipping cut %s: no supervision in a language of the model", cut.id)
        return []
    sup = cut.supervisions[0]
    src = sup.language
    translations = (sup.custom or {}).get("translations") or {}
    wanted = tasks
    if wanted is None and trained is not None:
        wanted = cut_tasks(cut, trained["asr_languages"], trained["st_directions"])
    elif wanted is None:
        wanted = ["asr"] + [f"st_{t}" for t in sorted(translations) if f"st_{t}" in tok.tasks]
    items = []
    for task in wanted:
        if task == "asr":
            items.append(Item(index, cut.id, f"asr_{src}", tok.sot_sequence(src, task), sup.text))
            continue
        tgt = task[len("st_") :]
        ref = translations.get(tgt)
        if tgt != src and isinstance(ref, str) and ref.strip() and task in tok.tasks:
            prefix = tok.sot_sequence(src, task)
            items.append(Item(index, cut.id, f"st_{src}-{tgt}", prefix, ref))
    return items


def make_batches(cuts: list, max_duration: float) -> list[list]:
    """Groups cuts (longest first, so padding is small) into batches of at most ``max_duration``
    seconds of audio (a longer cut gets a batch of its own)."""
    batches, current, total = [], [], 0.0
    for cut in sorted(cuts, key=lambda c: c.duration, reverse=True):
        if current and total + cut.duration > max_duration:
            batches.append(current)
            current, total = [], 0.0
        current.append(cut)
        total += cut.duration
    if current:
        batches.append(current)
    return batches


def load_features(cuts: list, logmel, sample_rate: int, skipped: list) -> tuple:
    """Reads audio and computes log-mel features; unreadable cuts are logged and skipped.

    Returns the usable cuts, feats (B, T, F) and feat_lens (B,) (None, None if none is usable).
    """
    from speechkit.data import AudioError, load_audio

    waves, ok = [], []
    for cut in cuts:
        try:
            waves.append(torch.from_numpy(load_audio(cut, sample_rate)))
            ok.append(cut)
        except AudioError as e:
            logger.warning("skipping %s", e)
            skipped.append({"cut_id": cut.id, "error": str(e)})
    if not ok:
        return ok, None, None
    lens = torch.tensor([w.numel() for w in waves])
    wave = torch.zeros(len(waves), int(lens.max()))
    for i, w in enumerate(waves):
        wave[i, : w.numel()] = w
    feats, feat_lens = logmel(wave, lens)
    return ok, feats, feat_lens


def _search(model, enc, enc_lens, group: list[Item], prefixes, opts, ids, max_positions):
    """Decodes ``group`` (items whose prefixes, ``prefixes``, have one length) -> per item the
    best hypothesis as (tokens, score); ([], None) when the search found none."""
    rows = torch.tensor([it.index for it in group], device=enc.device)
    prefix = torch.tensor(prefixes, device=enc.device)
    # Learned positions end at max_positions: the prefix, the text and <eos> must fit.
    opts = dataclasses.replace(opts, max_len=min(opts.max_len, max_positions - prefix.shape[1] - 1))
    search = greedy_search if opts.beam_size == 1 and opts.ctc_weight == 0 else beam_search
    nbests = search(model, enc[rows], enc_lens[rows], prefix, opts, ids)
    return [(nb[0].tokens, nb[0].score) if nb else ([], None) for nb in nbests]


@torch.inference_mode()
def decode_items(
    pre, feats, feat_lens, items: list[Item], opts: DecodeOptions, device, st_prompt: str = "none"
) -> list:
    """Encodes a batch once and decodes every item (rows may share a cut).

    The CTC head is trained on transcripts in the spoken language, so CTC prefix scoring is used
    for ASR items only; ST items are decoded with the attention decoder alone. With
    ``st_prompt`` ``asr`` or ``both`` the transcripts come first and prompt the translations
    (see the module docstring); a cut whose transcript was not asked for is transcribed anyway.
    """
    model, tok = pre.model, pre.tokenizer
    ids = SpecialIds.from_tokenizer(tok)
    max_positions = pre.config.max_target_positions
    enc, enc_lens = model.encode(feats.to(device), feat_lens.to(device))
    asr = [it for it in items if it.subdir.startswith("asr_")]
    st = [it for it in items if not it.subdir.startswith("asr_")]
    if st_prompt in ("asr", "both"):
        have = {it.index for it in asr}
        for it in st:
            if it.index not in have:
                src = it.subdir[len("st_") :].split("-")[0]
                asr.append(
                    Item(it.index, it.cut_id, f"asr_{src}", tok.sot_sequence(src, "asr"), "", False)
                )
                have.add(it.index)
    results, transcripts = [], {}
    if asr:
        best = _search(
            model, enc, enc_lens, asr, [it.prefix for it in asr], opts, ids, max_positions
        )
        for it, (tokens, score) in zip(asr, best):
            transcripts[it.index] = tokens
            if it.output:
                results.append((it, tok.decode(tokens), score))
    st_opts = dataclasses.replace(opts, ctc_weight=0.0)
    passes = []
    if st and st_prompt in ("none", "both"):
        passes.append([(it, it.prefix) for it in st])
    if st and st_prompt in ("asr", "both"):
        suffix = TWO_PASS_SUFFIX if st_prompt == "both" else ""
        # The prompt length the model was trained with; else a third of the positions.
        max_prompt = (pre.tasks or {}).get("max_prompt_tokens") or max(1, max_positions // 3)
        passes.append(
            [
                (
                    dataclasses.replace(it, subdir=it.subdir + suffix),
                    [tok.sop_id] + transcripts[it.index][-max_prompt:] + it.prefix,
                )
                for it in st
            ]
        )
    for pairs in passes:
        by_length: dict[int, list] = defaultdict(list)
        for it, prefix in pairs:
            by_length[len(prefix)].append((it, prefix))
        for group in by_length.values():
            group_items = [it for it, _ in group]
            prefixes = [p for _, p in group]
            best = _search(model, enc, enc_lens, group_items, prefixes, st_opts, ids, max_positions)
            for it, (tokens, score) in zip(group_items, best):
                results.append((it, tok.decode(tokens), score))
    return results


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def write_outputs(out: Path, results: dict[str, list]) -> None:
    """Writes hyp.txt, ref.txt and hyps.jsonl per output directory, sorted by cut id."""
    for subdir, rows in results.items():
        d = out / subdir
        d.mkdir(parents=True, exist_ok=True)
        rows = sorted(rows, key=lambda r: r[0].cut_id)
        with open(d / "hyp.txt", "w") as fh, open(d / "ref.txt", "w") as fr:
            for it, hyp, _ in rows:
                fh.write(f"{it.cut_id} {_one_line(hyp)}\n")
                fr.write(f"{it.cut_id} {_one_line(it.ref)}\n")
        with open(d / "hyps.jsonl", "w") as fj:
            for it, hyp, score in rows:
                rec = {"id": it.cut_id, "hyp": hyp, "ref": it.ref, "score": score}
                fj.write(json.dumps(rec, ensure_ascii=False) + "\n")


def options_from_args(args: argparse.Namespace, max_positions: int, prefix_len: int):
    # The decoder has learned positions for max_positions tokens: prefix + text + eos must fit.
    max_len = min(args.max_len, max_positions - prefix_len - 1)
    return DecodeOptions(
        beam_size=args.beam_size,
        length_norm=not args.no_length_norm,
        length_penalty=args.length_penalty,
        ctc_weight=args.ctc_weight,
        ctc_top_k=args.ctc_top_k,
        max_len_ratio=args.max_len_ratio,
        max_len=max_len,
    )


def run(args: argparse.Namespace) -> dict:
    """Decodes everything; returns the stats also written to ``decode_stats.json``."""
    from lhotse import CutSet

    from speechkit.data import LogMel
    from speechkit.pretrained import load_pretrained

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    pre = load_pretrained(args.model, device=device)
    tok = pre.tokenizer
    tasks = None if args.tasks == "auto" else [t.strip() for t in args.tasks.split(",") if t]
    for task in tasks or []:
        if task != "asr" and task not in tok.tasks:
            raise SystemExit(f"--tasks: {task!r} is not a task of this model ({tok.tasks})")
    opts = options_from_args(args, pre.config.max_target_positions, 4)
    st_prompt = args.st_prompt
    if st_prompt == "auto":
        st_prompt = "both" if (pre.tasks or {}).get("st_source_prompt", 0) > 0 else "none"
    logmel = LogMel(pre.features)

    cuts = list(CutSet.from_file(args.cuts))
    if args.max_utts is not None:
        cuts = cuts[: args.max_utts]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list] = defaultdict(list)
    skipped: list = []
    audio_s, start = 0.0, time.perf_counter()
    bar = tqdm(total=round(sum(c.duration for c in cuts)), unit="s", desc="decode (audio s)")
    for batch in make_batches(cuts, args.batch_duration):
        ok, feats, feat_lens = load_features(batch, logmel, pre.features.sample_rate, skipped)
        items = [it for i, c in enumerate(ok) for it in cut_items(c, i, tasks, tok, pre.tasks)]
        if items:
            decoded = decode_items(pre, feats, feat_lens, items, opts, device, st_prompt)
            for it, hyp, score in decoded:
                results[it.subdir].append((it, hyp, score))
        audio_s += sum(c.duration for c in ok)
        bar.update(round(sum(c.duration for c in batch)))
    bar.close()
    wall_s = time.perf_counter() - start
    write_outputs(out, results)
    stats = {
        "model": str(args.model),
        "cuts": str(args.cuts),
        "num_cuts": len(cuts),
        "num_skipped": len(skipped),
        "skipped": skipped,
        "outputs": {k: len(v) for k, v in sorted(results.items())},
        "audio_seconds": audio_s,
        "wall_seconds": wall_s,
        "rtf": wall_s / audio_s if audio_s else None,
        "rtfx": audio_s / wall_s if wall_s else None,
        "device": str(device),
        "options": to_dict(opts),
        "st_prompt": st_prompt,
    }
    (out / "decode_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        stats = run(args)
    except (ConfigError, FileNotFoundError) as e:
        logger.error("%s", e)
        return 2
    logger.info(
        "decoded %d cuts (%d skipped) into %s; RTFx %.1f",
        stats["num_cuts"] - stats["num_skipped"],
        stats["num_skipped"],
        args.out,
        stats["rtfx"] or 0.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
