"""Decode audio with a trained or pretrained model into hypothesis files that ``score`` reads.

Usage::

    python -m speechkit.bin.decode --model exp/run/packed --cuts data/test.jsonl.gz --out exp/dec \\
        [--tasks auto|asr|st_deu,...] [--beam-size 5] [--ctc-weight 0.3] [--batch-duration 200] \\
        [--st-prompt none|asr|both|auto] [--device auto] [--max-utts N] [--max-per-output N]
    speechkit decode --model whisper-tiny.en --wav-scp data/test/wav.scp --text data/test/text \\
        --language eng --out exp/dec_whisper
    speechkit decode --model owsm-v3.1-ebf-base a.wav b.flac --language eng --out exp/dec_files

``--model``: a packed model directory, a training checkpoint ``.pt`` or a zoo name: S2T models
(trained here, or OWSM imported from ESPnet) are decoded by the batched beam search below (with
joint CTC scoring when ``--ctc-weight`` > 0); Whisper models with Whisper's prompt and rules
(``speechkit.decode.whisper``, as ``speechkit transcribe``), inputs over 30 s window by window
(``speechkit.decode.longform``), the language given, never detected.

Inputs (``speechkit.data.inputs``, any mix): ``--cuts`` (a lhotse manifest: language and
references from the supervisions), ``--wav-scp`` (Kaldi; ``cmd |`` pipes run only with
``--allow-pipes``) and audio files (always file names). Files and wav.scp entries take their
language from ``--language`` (default: the model's only language) and their references, if any,
from ``--text`` (Kaldi ``<utt> <text>`` lines; utterance = wav.scp key or file name as given).

``--tasks auto`` decodes the tasks the model was trained for (ASR languages and ST directions
recorded in its config) that the cut has a reference for; for a model without that record, ASR
and ST into every language the cut has a translation for and the tokenizer has a token for.
``--languages eng,deu`` keeps only cuts spoken in those languages. Output, one directory per task
and direction (``DIR/asr_eng/``, ``DIR/st_eng-deu/``)::

    hyp.txt  ref.txt   Kaldi style: "<cut_id> <text>" per line (ref.txt only with references)
    hyps.jsonl         {"id", "hyp", "ref", "score"} per line

and ``DIR/decode_stats.json`` with speed (RTF = wall / audio seconds; RTFx = its inverse) and the
inputs skipped for unreadable audio. Score the result with ``python -m speechkit.bin.score``.

Gated models (``model_type: gated_s2t``, trained with ``task: prune``): ``--budget B`` (in [0, 1],
the fraction of the gated modules' FLOPs to keep) is given to the gate predictor, with the
stored contexts of ``--contexts DIR`` and the language context of ``--language-context``
(``lid``: the model's own posterior; ``oracle``: the cut's language). Off modules are not run;
utterances are batched by gate pattern (``speechkit.decode.gated``). Beside the hypotheses,
``gates.jsonl`` gives per item the GFLOPs (encoder / decoder), the achieved sparsity and the
gates; ``decode_stats.json`` their means under ``gates``. Gated Whisper models (``model_type:
gated_whisper``, ``task: prune_whisper``; decoder gates only) take ``--budget`` too: each window
is decoded with its own decoder gate pattern (windows of one pattern together), and
``decode_stats.json`` gives the decoder GFLOPs with and without gates under ``gates``.

Two-pass translation (``--st-prompt asr``; S2T models trained with ``data.st_source_prompt``):
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
from speechkit.data.audio import AudioError, load_audio
from speechkit.data.inputs import collect_inputs
from speechkit.data.kaldi import KaldiDataError
from speechkit.data.tasks import cut_tasks
from speechkit.decode import DecodeOptions, SpecialIds, beam_search, greedy_search
from speechkit.nn.gates import decoding_budget
from speechkit.pretrained import GATED_TYPES, WHISPER_TYPES

logger = logging.getLogger("speechkit.bin.decode")


@dataclass
class Item:
    """One (cut, task) to decode: the cut's index in its batch, the output directory name, the
    decoder prefix, the reference text (None: unknown), the spoken language and the task."""

    index: int
    cut_id: str
    subdir: str
    prefix: list[int]
    ref: str | None
    output: bool = True  # False: a first-pass transcript needed only as a prompt
    lang: str = ""
    task: str = "asr"


ST_PROMPT_MODES = ("none", "asr", "both", "auto")
TWO_PASS_SUFFIX = ".2pass"
S2T_MAX_LEN = 200  # default --max-len of S2T models (Whisper: its own 224)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="*", help="audio files (each one input, named as given)")
    p.add_argument(
        "--model", required=True, help="packed model directory, checkpoint .pt, zoo name"
    )
    p.add_argument("--cuts", help="lhotse cut manifest (.jsonl or .jsonl.gz)")
    p.add_argument("--wav-scp", help="Kaldi wav.scp: '<utt> <path>' or '<utt> <command> |'")
    p.add_argument("--allow-pipes", action="store_true",
                   help="run wav.scp lines '<utt> <command> |' through the shell (trusted files only)")  # fmt: skip
    p.add_argument("--text", help="Kaldi text '<utt> <reference>' for --wav-scp and file inputs")
    p.add_argument("--language", help="spoken language (ISO 639-3) of --wav-scp and file inputs")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--frontend",
        help="separation front end: a separator trained with task: "
        "separation (experiment dir or checkpoint); extracts --frontend-query's "
        "source from every input before recognition",
    )
    p.add_argument(
        "--frontend-query",
        default="speech",
        help="the sound class the front end extracts (default: speech)",
    )
    p.add_argument(
        "--frontend-remix",
        type=float,
        default=0.0,
        help="share of the input the front end adds back to its estimate, 0..1 "
        "(observation adding; default 0)",
    )
    p.add_argument("--tasks", default="auto", help="auto, or a comma list: asr,st_deu,...")
    p.add_argument("--languages", help="decode only cuts spoken in these (comma list)")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--ctc-weight", type=float, default=0.0)
    p.add_argument("--ctc-top-k", type=int, default=20)
    p.add_argument("--length-penalty", type=float, default=0.0)
    p.add_argument("--no-length-norm", action="store_true", help="rank by summed log-prob")
    p.add_argument("--max-len", type=int, default=None,
                   help=f"max output tokens (default {S2T_MAX_LEN}; Whisper: 224 per window)")  # fmt: skip
    p.add_argument("--max-len-ratio", type=float, default=1.0, help="max tokens per enc frame")
    p.add_argument("--batch-duration", type=float, default=200.0, help="audio seconds per batch")
    p.add_argument("--batch-size", type=int, default=8, help="Whisper: inputs per encoder call")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--max-utts", type=int, default=None, help="decode only the first N inputs")
    p.add_argument("--max-per-output", type=int, default=0,
                   help="decode only the first N cuts of each output directory (0 = all)")  # fmt: skip
    p.add_argument("--st-prompt", default="auto", choices=ST_PROMPT_MODES,
                   help="translate with the cut's first-pass transcript as prompt (see above)")  # fmt: skip
    p.add_argument("--budget", type=float, default=None,
                   help="gated models: fraction of the gated modules' FLOPs to keep, in [0, 1]")  # fmt: skip
    p.add_argument("--contexts", default=None,
                   help="gated models: directory of stored contexts (speaker/event.safetensors)")  # fmt: skip
    p.add_argument("--language-context", default="lid", choices=("lid", "oracle"),
                   help="gated models with language context: own LID posterior or the oracle")  # fmt: skip
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
            prefix = tok.sot_sequence(src, task)
            items.append(Item(index, cut.id, f"asr_{src}", prefix, sup.text, lang=src))
            continue
        tgt = task[len("st_") :]
        ref = translations.get(tgt)
        if tgt != src and isinstance(ref, str) and ref.strip() and task in tok.tasks:
            prefix = tok.sot_sequence(src, task)
            items.append(Item(index, cut.id, f"st_{src}-{tgt}", prefix, ref, lang=src, task=task))
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


def audio_reader(frontend: str | None, query: str, remix: float = 0.0):
    """``read(cut, sample_rate) -> wave``: ``load_audio``, then the separation front end's
    extraction of ``query`` when ``frontend`` names a trained separator, with ``remix`` of the
    input added back (``speechkit.separate.Extractor``)."""
    if frontend is None:
        return load_audio
    from speechkit.separate import Extractor  # (the separation extra's query encoders)

    try:
        extractor = Extractor.from_dir(frontend, query=query, remix=remix)
    except (ValueError, FileNotFoundError) as e:  # unknown query, not a separator, no file
        raise ConfigError(f"--frontend {frontend}: {e}") from None
    logger.info("front end: %s extracts %r before recognition (remix %g)", frontend, query, remix)
    return lambda cut, sample_rate: extractor(load_audio(cut, sample_rate), sample_rate)


def load_features(cuts: list, logmel, sample_rate: int, skipped: list, read=load_audio) -> tuple:
    """Reads audio (``read``) and computes log-mel features; unreadable cuts are logged and
    skipped.

    Returns the usable cuts, feats (B, T, F) and feat_lens (B,) (None, None if none is usable).
    """
    waves, ok = [], []
    for cut in cuts:
        try:
            waves.append(torch.from_numpy(read(cut, sample_rate)))
            ok.append(cut)
        except AudioError as e:
            _skip(e, skipped)
    if not ok:
        return ok, None, None
    lens = torch.tensor([w.numel() for w in waves])
    wave = torch.zeros(len(waves), int(lens.max()))
    for i, w in enumerate(waves):
        wave[i, : w.numel()] = w
    feats, feat_lens = logmel(wave, lens)
    return ok, feats, feat_lens


def _skip(error: AudioError, skipped: list) -> None:
    logger.warning("skipping %s", error)
    skipped.append({"cut_id": error.name, "error": str(error)})


def _search(model, enc, enc_lens, group: list[Item], prefixes, opts, ids, max_positions,
            gating=None):  # fmt: skip
    """Decodes ``group`` (items whose prefixes, ``prefixes``, have one length) -> per item the
    best hypothesis as (tokens, score); ([], None) when the search found none. With
    ``gating`` (a ``GatedDecoding``), the items of each decoder gate pattern are searched
    together through a decoder that runs only that pattern's modules."""
    if gating is not None:
        best: list = [None] * len(group)
        for pattern, pos in gating.groups([it.index for it in group]):
            sub = _search(gating.decoder(pattern), enc, enc_lens, [group[i] for i in pos],
                          [prefixes[i] for i in pos], opts, ids, max_positions)  # fmt: skip
            for i, (tokens, score) in zip(pos, sub):
                best[i] = (tokens, score)
                # positions run: the prefix, then one per output token and <eos>
                gating.record(group[i].cut_id, group[i].subdir, group[i].index,
                              len(prefixes[i]) + len(tokens) + 1)  # fmt: skip
        return best
    rows = torch.tensor([it.index for it in group], device=enc.device)
    prefix = torch.tensor(prefixes, device=enc.device)
    # Learned positions end at max_positions: the prefix, the text and <eos> must fit.
    opts = dataclasses.replace(opts, max_len=min(opts.max_len, max_positions - prefix.shape[1] - 1))
    search = greedy_search if opts.beam_size == 1 and opts.ctc_weight == 0 else beam_search
    nbests = search(model, enc[rows], enc_lens[rows], prefix, opts, ids)
    return [(nb[0].tokens, nb[0].score) if nb else ([], None) for nb in nbests]


@torch.inference_mode()
def decode_items(
    pre,
    feats,
    feat_lens,
    items: list[Item],
    opts: DecodeOptions,
    device,
    st_prompt: str = "none",
    gating=None,
) -> list:
    """Encodes a batch once and decodes every item (rows may share a cut).

    The CTC head is trained on transcripts in the spoken language, so CTC prefix scoring is used
    for ASR items only; ST items are decoded with the attention decoder alone. With
    ``st_prompt`` ``asr`` or ``both`` the transcripts come first and prompt the translations
    (see the module docstring); a cut whose transcript was not asked for is transcribed anyway.
    ``gating``: a ``GatedDecoding`` for gated models (see the module docstring).
    """
    model, tok = pre.model, pre.tokenizer
    ids = SpecialIds.from_tokenizer(tok)
    max_positions = pre.config.max_target_positions
    if gating is None:
        enc, enc_lens = model.encode(feats.to(device), feat_lens.to(device))
    else:
        row_of = {it.index: it for it in items}
        rows = [row_of[b] for b in range(feats.shape[0])]
        enc, enc_lens = gating.encode(feats.to(device), feat_lens.to(device),
                                      [it.cut_id for it in rows], [it.lang for it in rows])  # fmt: skip
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
            model, enc, enc_lens, asr, [it.prefix for it in asr], opts, ids, max_positions, gating
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
            best = _search(model, enc, enc_lens, group_items, prefixes, st_opts, ids,
                           max_positions, gating)  # fmt: skip
            for it, (tokens, score) in zip(group_items, best):
                results.append((it, tok.decode(tokens), score))
    return results


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def write_outputs(out: Path, results: dict[str, list], gating=None) -> None:
    """Writes hyp.txt, ref.txt (where references are known) and hyps.jsonl per output
    directory, sorted by cut id (and gates.jsonl for a gated model)."""
    for subdir, rows in results.items():
        d = out / subdir
        d.mkdir(parents=True, exist_ok=True)
        if gating is not None:
            lines = "".join(json.dumps(r) + "\n" for r in gating.rows(subdir))
            (d / "gates.jsonl").write_text(lines)
        rows = sorted(rows, key=lambda r: r[0].cut_id)
        (d / "hyp.txt").write_text("".join(f"{it.cut_id} {_one_line(h)}\n" for it, h, _ in rows))
        if any(it.ref is not None for it, _, _ in rows):
            refs = "".join(f"{it.cut_id} {_one_line(it.ref or '')}\n" for it, _, _ in rows)
            (d / "ref.txt").write_text(refs)
        with open(d / "hyps.jsonl", "w") as fj:
            for it, hyp, score in rows:
                rec = {"id": it.cut_id, "hyp": hyp, "ref": it.ref, "score": score}
                fj.write(json.dumps(rec, ensure_ascii=False) + "\n")


def options_from_args(args: argparse.Namespace, max_positions: int, prefix_len: int):
    # The decoder has learned positions for max_positions tokens: prefix + text + eos must fit.
    max_len = min(args.max_len or S2T_MAX_LEN, max_positions - prefix_len - 1)
    return DecodeOptions(
        beam_size=args.beam_size,
        length_norm=not args.no_length_norm,
        length_penalty=args.length_penalty,
        ctc_weight=args.ctc_weight,
        ctc_top_k=args.ctc_top_k,
        max_len_ratio=args.max_len_ratio,
        max_len=max_len,
    )


def read_text(path: str | None) -> dict[str, str]:
    """Kaldi ``text``: ``<utt> <text>`` lines -> {utt: text}."""
    if path is None:
        return {}
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        key, _, text = line.strip().partition(" ")
        if key:
            out[key] = text.strip()
    return out


def load_cuts(args: argparse.Namespace, tok, skipped: list) -> list:
    """Every input as a cut with one supervision (language; reference text where known), the
    ``--languages`` and ``--max-utts`` selections applied."""
    from lhotse import CutSet, SupervisionSegment

    from speechkit.data.segments import split_supervisions

    inputs = collect_inputs(args.files, args.wav_scp, args.cuts, args.allow_pipes)
    for e in inputs.errors:
        _skip(e, skipped)
    refs = read_text(args.text)
    if args.language is not None and args.language not in tok.languages:
        raise ConfigError(f"--language {args.language!r}: not a language of the model "
                          f"(ISO 639-3 codes: {', '.join(tok.languages[:12])} ...)")  # fmt: skip
    language = args.language or (tok.languages[0] if len(tok.languages) == 1 else None)
    cuts = []
    # A cut of several segments decodes segment by segment (data/segments.py).
    segments = [s for c in inputs.cuts for s in split_supervisions(CutSet.from_cuts([c]))]
    for cut in segments:
        if not cut.supervisions:
            if language is None:
                raise ConfigError(f"{cut.id}: give --language (the model speaks several)")
            sup = SupervisionSegment(cut.id, cut.recording_id, 0.0, cut.duration,
                                     text=refs.get(cut.id), language=language)  # fmt: skip
            cut = dataclasses.replace(cut, supervisions=[sup])
        cuts.append(cut)
    if args.languages:
        keep = set(args.languages.split(","))
        cuts = [c for c in cuts if c.supervisions[0].language in keep]
    return cuts[: args.max_utts] if args.max_utts is not None else cuts


def plan_items(cuts: list, tasks: list[str] | None, pre, per_output: int) -> list:
    """[(cut, items)] of the cuts with something to decode; ``per_output`` > 0 keeps the first
    that many cuts (in input order) of every output directory."""
    plan, counts = [], defaultdict(int)
    for cut in cuts:
        items = []
        for it in cut_items(cut, -1, tasks, pre.tokenizer, pre.tasks):
            if per_output <= 0 or counts[it.subdir] < per_output:
                counts[it.subdir] += 1
                items.append(it)
        if items:
            plan.append((cut, items))
    return plan


def decode_s2t(
    pre, plan: list, args, opts, st_prompt: str, device, skipped: list, bar, read, gating=None
) -> dict:
    """S2T / OWSM models: batches of ``--batch-duration`` seconds, one encoder pass per cut."""
    from speechkit.data import LogMel
    from speechkit.tasks.s2t import codec_front_end

    # a model trained on speech codec codes reads them from its (frozen) codec
    logmel = codec_front_end(pre.features, pre.config) or LogMel(pre.features)
    items_of = {cut.id: items for cut, items in plan}
    results: dict[str, list] = defaultdict(list)
    for batch in make_batches([cut for cut, _ in plan], args.batch_duration):
        ok, feats, feat_lens = load_features(batch, logmel, pre.features.sample_rate, skipped, read)
        items = [
            dataclasses.replace(it, index=i) for i, c in enumerate(ok) for it in items_of[c.id]
        ]
        if items:
            decoded = decode_items(pre, feats, feat_lens, items, opts, device, st_prompt, gating)
            for it, hyp, score in decoded:
                results[it.subdir].append((it, hyp, score))
        bar.update(round(sum(c.duration for c in batch)))
    return results


def make_gating(pre, args):
    """A ``GatedDecoding`` for a gated model (``--budget`` required), else None."""
    if pre.model_type != "gated_s2t":
        return None
    from speechkit.decode.gated import GatedDecoding

    # gate_mode none: budget 1.0, nothing to decide (GFLOPs are still counted)
    budget = decoding_budget(args.budget, str(args.model), True, pre.model.predictor is not None)
    try:
        return GatedDecoding(pre.model, pre.tokenizer, budget, args.contexts,
                             args.language_context, beam=args.beam_size)  # fmt: skip
    except ValueError as e:
        raise ConfigError(str(e)) from None


def decode_whisper(pre, plan: list, args, device, skipped: list, bar, read, budget=None) -> tuple:
    """Whisper models: ``speechkit transcribe``'s decoder with the cut's language and task,
    ``--batch-size`` inputs at a time within each (language, task), in input order; a gated
    model at ``budget``. Returns the results, the search options and, for a gated model, its
    gate summary (else None)."""
    from speechkit.inference import TranscribeOptions, Transcriber

    if args.ctc_weight > 0:
        raise ConfigError("--ctc-weight: a Whisper model has no CTC head")
    max_new = min(args.max_len or 224, 224)
    opts = TranscribeOptions(beam=args.beam_size, batch_size=args.batch_size,
                             max_new_tokens=max_new)  # fmt: skip
    transcriber = Transcriber(pre, opts, device, budget=budget, name=str(args.model))
    groups: dict[tuple, list] = defaultdict(list)
    for cut, items in plan:
        for it in items:
            groups[(it.lang, it.task)].append((cut, it))
    bar.reset(total=round(sum(cut.duration for pairs in groups.values() for cut, _ in pairs)))
    results: dict[str, list] = defaultdict(list)
    failed: set[str] = set()  # a cut decoded for two tasks is reported once
    for (lang, task), pairs in groups.items():
        for start in range(0, len(pairs), args.batch_size):
            chunk = pairs[start : start + args.batch_size]
            waves, done = [], []
            for cut, it in chunk:
                try:
                    if cut.id not in failed:
                        waves.append(read(cut, 16000))
                        done.append(it)
                except AudioError as e:
                    failed.add(cut.id)
                    _skip(e, skipped)
            langs, tasks = [lang] * len(done), [task] * len(done)
            for it, r in zip(done, transcriber(waves, [it.cut_id for it in done], langs, tasks)):
                results[it.subdir].append((it, r.text, None))
            bar.update(round(sum(cut.duration for cut, _ in chunk)))
    return results, to_dict(transcriber.search_opts), transcriber.windows.gate_summary()


def run(args: argparse.Namespace) -> dict:
    """Decodes everything; returns the stats also written to ``decode_stats.json``."""
    from speechkit import zoo

    if not (args.files or args.cuts or args.wav_scp):
        raise ConfigError("nothing to decode: give audio files, --wav-scp or --cuts")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    pre = zoo.load(args.model, device=device)
    tok = pre.tokenizer
    tasks = None if args.tasks == "auto" else [t.strip() for t in args.tasks.split(",") if t]
    for task in tasks or []:
        if task != "asr" and task not in tok.tasks:
            raise SystemExit(f"--tasks: {task!r} is not a task of this model ({tok.tasks})")
    skipped: list = []
    cuts = load_cuts(args, tok, skipped)
    num_inputs = len(cuts) + len(skipped)  # the inputs that could not even be opened, too
    plan = plan_items(cuts, tasks, pre, args.max_per_output)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gating = gates = None
    dynamic = getattr(pre.model, "predictor", None) is not None
    # before any decoding: a budget missing, out of range or given to a model without gates
    budget = decoding_budget(args.budget, str(args.model), pre.model_type in GATED_TYPES, dynamic)
    # (the front end is loaded before the clock starts)
    read = audio_reader(args.frontend, args.frontend_query, args.frontend_remix)
    audio_s, start = sum(c.duration for c, _ in plan), time.perf_counter()
    bar = tqdm(total=round(audio_s), unit="s", desc="decode (audio s)")
    st_prompt = args.st_prompt
    if pre.model_type in WHISPER_TYPES:
        st_prompt = "none"
        results, options, gates = decode_whisper(pre, plan, args, device, skipped, bar, read,
                                                 budget)  # fmt: skip
    else:
        opts = options_from_args(args, pre.config.max_target_positions, 4)
        if st_prompt == "auto":
            st_prompt = "both" if (pre.tasks or {}).get("st_source_prompt", 0) > 0 else "none"
        gating = make_gating(pre, args)
        results = decode_s2t(pre, plan, args, opts, st_prompt, device, skipped, bar, read, gating)
        options = to_dict(opts)
    bar.close()
    wall_s = time.perf_counter() - start
    failed = {s["cut_id"] for s in skipped}
    audio_s = sum(c.duration for c, _ in plan if c.id not in failed)
    write_outputs(out, results, gating)
    stats = {
        "model": str(args.model),
        "model_type": pre.model_type,
        "cuts": str(args.cuts),
        "wav_scp": args.wav_scp,
        "files": len(args.files),
        "num_cuts": num_inputs,
        "num_skipped": len(skipped),
        "skipped": skipped,
        "outputs": {k: len(v) for k, v in sorted(results.items())},
        "audio_seconds": audio_s,
        "wall_seconds": wall_s,
        "rtf": wall_s / audio_s if audio_s else None,
        "rtfx": audio_s / wall_s if wall_s else None,
        "device": str(device),
        "options": options,
        "st_prompt": st_prompt,
        "max_per_output": args.max_per_output or None,
        "frontend": args.frontend
        and {
            "model": str(args.frontend),
            "query": args.frontend_query,
            "remix": args.frontend_remix,
        },
    }
    if gating is not None:
        gates = gating.summary()
    if gates is not None:
        stats["gates"] = gates
    (out / "decode_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    from speechkit.zoo.errors import ZooError

    try:
        stats = run(args)
    except (ConfigError, FileNotFoundError, KaldiDataError, ZooError) as e:
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
