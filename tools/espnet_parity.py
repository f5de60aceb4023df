"""Parity with ESPnet at the published OWSM v3.1 sizes, through the zoo's own download path.

    python tools/espnet_parity.py --size base --results-md egs/phrasebook/s2t1/RESULTS.md

No OWSM weights can be downloaded on this project's machines, so this builds ESPnet's own
``ESPnetS2TModel`` with the architecture of an OWSM v3.1 model (``--size``: base 101M, small 367M,
medium 1.02B; ``tiny`` is a shrunk one for tests) and random weights, writes it in the layout of
the hub repo (``meta.yaml``, ``exp/.../config.yaml`` with every argument ESPnet saves, the
``.pth``, ``bpe.model``, ``feats_stats.npz``), serves that repo from 127.0.0.1 as ``HF_ENDPOINT``
(``speechkit.zoo.local_hub``) and fetches it with ``speechkit.zoo.download`` under the catalogue's
real name (``owsm-v3.1-ebf-base`` ...), pinned to the local commit, which converts it. It then
compares, on the same audio:

* encoder output (ESPnet's front end + global MVN + encoder vs speechkit's), per utterance and for
  a padded batch of three lengths; CTC log-posteriors; decoder logits with teacher forcing on an
  OWSM prompt (``<sos> <eng> <asr> <notimestamps>`` + text);
* beam-search tokens against ``espnet2.bin.s2t_inference.Speech2Text`` on a 30 s input (its fixed
  ``speech_length``), with ESPnet's rules (``DecodeOptions(stop="espnet", ...)``).

The vocabulary is a sentencepiece model of the phrasebook grammar's sentences (about 2k pieces
instead of OWSM's 50k), so the embedding, output layer and CTC head are smaller than the
published ones; every other tensor has its published shape. Exits 1 if a difference exceeds the
tolerance or a hypothesis differs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from speechkit.convert.espnet_reference import build_espnet_model  # noqa: E402
from speechkit.data.features import LogMel  # noqa: E402
from speechkit.decode import DecodeOptions, SpecialIds, beam_search  # noqa: E402
from speechkit.pretrained import load_pretrained  # noqa: E402
from speechkit.report import provenance_lines, update_markdown  # noqa: E402

TITLE = "OWSM v3.1 architecture: parity with ESPnet at full size"
# size -> (zoo name, d_model, heads, FFN/cgMLP units, encoder blocks, decoder blocks, exp dir)
SIZES = {
    "tiny": ("owsm-v3.1-ebf-base", 64, 4, 128, 2, 2, "size64_e2_d2"),
    "base": ("owsm-v3.1-ebf-base", 384, 6, 1536, 6, 6, "size384_e6_d6_piecewise_lr1e-3"),
    "small": ("owsm-v3.1-ebf-small", 768, 12, 3072, 9, 9, "size768_e9_d9_piecewise_lr5e-4"),
    "medium": ("owsm-v3.1-ebf", 1024, 16, 4096, 18, 18, "size1024_e18_d18_piecewise_lr2e-4"),
}
PUBLISHED_PARAMS = {"base": "101M", "small": "367M", "medium": "1.02B", "tiny": "-"}
LANGS = ["eng", "deu", "spa", "fra", "ita", "por", "nld", "pol", "rus", "jpn", "zho", "ara"]
TASKS = ["asr"] + [f"st_{x}" for x in LANGS[:4]]
RESOLUTION, MAX_TIME, SPEECH_LENGTH = 0.02, 30.0, 30  # seconds, as OWSM v3.1
LENGTHS = (2.0, 5.0, 11.0)  # seconds of the utterances compared one by one and batched
FLOOR = "encoder output, ESPnet fp32 vs ESPnet fp64"
ATOL = 1e-4  # x max(1, |output|): fp32 rounding after 6-18 layers is ~1e-6 of it


def owsm_tokens(sp: spm.SentencePieceProcessor, texts: list[str]) -> list[str]:
    """OWSM's token list order: specials, languages, tasks, <notimestamps>, <0.00>..<30.00>,
    pieces by frequency in ``texts``, then <sos>, <eos>, <sop>."""
    counts: dict[str, int] = {}
    for text in texts:
        for piece in sp.encode(text, out_type=str):
            counts[piece] = counts.get(piece, 0) + 1
    pieces = sorted(counts, key=lambda p: (-counts[p], p))
    times = [f"<{k * RESOLUTION:.2f}>" for k in range(round(MAX_TIME / RESOLUTION) + 1)]
    return (
        ["<blank>", "<unk>", "<na>", "<nospeech>"]
        + [f"<{x}>" for x in LANGS + TASKS]
        + ["<notimestamps>", *times, *pieces, "<sos>", "<eos>", "<sop>"]
    )


def owsm_config(size: str, tokens: list[str], bpe: str, stats: str) -> dict:
    """The OWSM v3.1 training config (ESPnet's egs2/owsm_v3.1/s2t1) at ``size``."""
    _, d, heads, units, n_enc, n_dec, _ = SIZES[size]
    drop = {"dropout_rate": 0.1, "positional_dropout_rate": 0.1}
    encoder = {
        "output_size": d, "attention_heads": heads, "attention_layer_type": "selfattn",
        "pos_enc_layer_type": "abs_pos", "rel_pos_type": "latest", "qk_norm": False,
        "use_flash_attn": True, "cgmlp_linear_units": units, "cgmlp_conv_kernel": 31,
        "use_linear_after_conv": False, "gate_activation": "identity", "num_blocks": n_enc,
        **drop, "attention_dropout_rate": 0.1, "input_layer": "conv2d", "layer_drop_rate": 0.0,
        "linear_units": units, "positionwise_layer_type": "linear", "use_ffn": True,
        "macaron_ffn": True, "merge_conv_kernel": 31,
    }  # fmt: skip
    decoder = {
        "attention_heads": heads, "linear_units": units, "num_blocks": n_dec, **drop,
        "self_attention_dropout_rate": 0.1, "src_attention_dropout_rate": 0.1,
        "use_flash_attn": True,
    }  # fmt: skip
    return {
        "token_list": tokens, "token_type": "bpe", "bpemodel": bpe, "input_size": None,
        "frontend": "default",
        "frontend_conf": {"n_fft": 512, "win_length": 400, "hop_length": 160},
        "specaug": "specaug",
        "specaug_conf": {"apply_time_warp": False, "time_warp_window": 5,
                         "time_warp_mode": "bicubic", "apply_freq_mask": True,
                         "freq_mask_width_range": [0, 27], "num_freq_mask": 2,
                         "apply_time_mask": True, "time_mask_width_ratio_range": [0.0, 0.05],
                         "num_time_mask": 10},
        "normalize": "global_mvn", "normalize_conf": {"stats_file": stats},
        "preencoder": None, "encoder": "e_branchformer", "encoder_conf": encoder,
        "postencoder": None, "decoder": "transformer", "decoder_conf": decoder,
        "model": "espnet",
        "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False,
                       "sym_na": "<na>"},
        "preprocessor": "s2t",
        "preprocessor_conf": {"text_prev_name": "text_prev", "text_ctc_name": "text_ctc",
                              "fs": 16000, "na_symbol": "<na>", "speech_length": SPEECH_LENGTH,
                              "speech_resolution": RESOLUTION, "speech_init_silence": 30,
                              "text_prev_apply_prob": 0.5, "time_apply_prob": 0.5,
                              "notime_symbol": "<notimestamps>", "first_time_symbol": "<0.00>",
                              "last_time_symbol": f"<{MAX_TIME:.2f}>"},
    }  # fmt: skip


def write_hub_repo(repo: Path, size: str, seed: int, noise: float) -> torch.nn.Module:
    """ESPnet's model at ``size`` with random weights, packed in ``repo`` like the OWSM hub repo
    (paths relative to the repo root, as ESPnet's packer writes them); returns the model."""
    from speechkit.data.phrasebook.grammar import all_sentences

    exp = f"exp/s2t_train_s2t_ebf_conv2d_{SIZES[size][6]}_warmup60k_flashattn_raw_bpe50000"
    bpe, stats = "data/token_list/bpe_unigram50000/bpe.model", "exp/s2t_stats_raw_bpe50000/train"
    stats += "/feats_stats.npz"
    texts = [t for s in all_sentences() for t in s.texts.values()]
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=proto, vocab_size=2000, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, minloglevel=2,
    )  # fmt: skip
    (repo / bpe).parent.mkdir(parents=True)
    (repo / bpe).write_bytes(proto.getvalue())
    tokens = owsm_tokens(spm.SentencePieceProcessor(model_proto=proto.getvalue()), texts)
    g = np.random.default_rng(seed)  # log-mel statistics of a plausible range, 80 bins
    mean, var, count = g.normal(-6.0, 1.0, 80), g.uniform(1.0, 4.0, 80), 10000
    (repo / stats).parent.mkdir(parents=True)
    np.savez(repo / stats, count=np.array(count), sum=mean * count,
             sum_square=(var + mean**2) * count)  # fmt: skip
    config = owsm_config(size, tokens, bpe, stats)
    model, args = build_espnet_model(config, repo / stats, seed=seed, scale=noise)
    (repo / exp).mkdir(parents=True)
    weights = f"{exp}/valid.total_count.ave_5best.till45epoch.pth"
    torch.save(model.state_dict(), repo / weights)
    saved = {**vars(args), "bpemodel": bpe, "normalize_conf": {"stats_file": stats}}
    saved.pop("output_dir", None)
    (repo / exp / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    meta = {"espnet": "202511", "files": {"s2t_model_file": weights},
            "yaml_files": {"s2t_train_config": f"{exp}/config.yaml"}}  # fmt: skip
    (repo / "meta.yaml").write_text(yaml.safe_dump(meta))
    return model


@contextlib.contextmanager
def local_hub(repo_id: str, repo: Path):
    """Serves the directory ``repo`` as the hub repo ``repo_id`` (``speechkit.zoo.local_hub``),
    set as ``HF_ENDPOINT``; yields (its commit, the hub, whose ``requests`` lists what was
    asked)."""
    from speechkit.zoo.local_hub import LocalHub

    saved = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "SPEECHKIT_OFFLINE")}
    with LocalHub() as hub:
        commit = hub.publish(repo_id, repo)
        os.environ["HF_ENDPOINT"] = hub.url
        os.environ.pop("SPEECHKIT_OFFLINE", None)
        try:
            yield commit, hub
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def wave(seconds: float, seed: int) -> torch.Tensor:
    """(S,) 16 kHz test signal: two tones under a rising envelope, plus noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(16000 * seconds)) / 16000
    tone = torch.sin(2 * math.pi * 440 * t) + 0.5 * torch.sin(2 * math.pi * 1250 * t)
    return (0.3 * tone * (0.2 + t / seconds) + 0.05 * torch.randn(t.shape, generator=g)).float()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(max |a - b|, max |b|)."""
    return float((a - b).abs().max()), float(b.abs().max())


def compare(esp, sk, waves: list[torch.Tensor]) -> dict[str, tuple[float, float]]:
    """Max differences (speechkit vs ESPnet) of encoder output, CTC log-posteriors and decoder
    logits, for each wave alone and for the padded batch of all of them.

    The reference is always ESPnet on one utterance: in a padded batch ESPnet's conv2d
    subsampling mask (``mask[:, :, :-2:2][:, :, :-2:2]``) keeps two frames more for the shorter
    utterances (51 instead of 49 for 2 s next to 11 s), so its batched output is not its own
    unbatched output; speechkit's batched output must equal it."""
    tok = sk.tokenizer
    mel = LogMel(sk.features)
    text = tok.sot_sequence("eng", "asr") + tok.encode("where is the station")
    ys = torch.tensor([text])
    out: dict[str, tuple[float, float]] = {}

    def keep(name, diff):
        old = out.get(name, (0.0, 0.0))
        out[name] = (max(old[0], diff[0]), max(old[1], diff[1]))

    lens = torch.tensor([w.numel() for w in waves])
    with torch.no_grad():
        # ESPnet's own fp32 rounding, as a yardstick: its fp32 encoder against its fp64 one
        esp64 = copy.deepcopy(esp).double()
        for w, n in zip(waves, lens):
            enc32, _ = esp.encode(w[None], n[None])
            enc64, _ = esp64.encode(w[None].double(), n[None])
            keep(FLOOR, max_diff(enc32, enc64.float()))
        del esp64
        ref = []  # ESPnet, one utterance at a time: (enc (T', D), CTC (T', V), logits (L, V))
        for w, n in zip(waves, lens):
            enc, enc_lens = esp.encode(w[None], n[None])
            logits, _ = esp.decoder(enc, enc_lens, ys, torch.tensor([ys.size(1)]))
            ref.append((enc[0], esp.ctc.log_softmax(enc)[0], logits[0]))
        batch = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
        runs = [(f"{w.numel() / 16000:g} s alone", w[None], n[None], [i])
                for i, (w, n) in enumerate(zip(waves, lens))]  # fmt: skip
        runs.append(("padded batch", batch, lens, list(range(len(waves)))))
        for label, speech, n, which in runs:
            enc, enc_lens = sk.model.encode(*mel(speech, n))
            ctc = sk.model.ctc_log_probs(enc)
            logits = sk.model.decode(ys.expand(len(which), -1), enc, enc_lens)
            kind = "alone" if len(which) == 1 else "padded batch"
            for row, i in enumerate(which):
                t = int(enc_lens[row])
                if t != ref[i][0].size(0):
                    raise SystemExit(f"{label}: {t} encoder frames, ESPnet {ref[i][0].size(0)}")
                keep(f"encoder output, {kind}", max_diff(enc[row, :t], ref[i][0]))
                keep(f"CTC log-posteriors, {kind}", max_diff(ctc[row, :t], ref[i][1]))
                keep(f"decoder logits, {kind}", max_diff(logits[row], ref[i][2]))
    return out


def beams(esp_dir: Path, sk, wav: torch.Tensor, beam: int, ctc_weight: float, ratio: float):
    """(ESPnet's tokens, speechkit's tokens) of one beam search on ``wav`` (30 s, as
    Speech2Text pads every input), ESPnet's stop rule and CTC scoring on both sides."""
    from espnet2.bin.s2t_inference import Speech2Text

    meta = yaml.safe_load((esp_dir / "meta.yaml").read_text())
    cwd = os.getcwd()
    os.chdir(esp_dir)  # the config names bpe.model and the statistics relative to the repo
    try:
        s2t = Speech2Text(
            s2t_train_config=meta["yaml_files"]["s2t_train_config"],
            s2t_model_file=meta["files"]["s2t_model_file"], beam_size=beam,
            ctc_weight=ctc_weight, nbest=1, lang_sym="<eng>", task_sym="<asr>", device="cpu",
            maxlenratio=ratio,
        )  # fmt: skip
        theirs = s2t(wav.numpy())[0][2]  # <lang> <task> <notimestamps> tokens..., no <eos>
    finally:
        os.chdir(cwd)
    tok = sk.tokenizer
    with torch.no_grad():
        speech, n = wav[None], torch.tensor([wav.numel()])
        enc, enc_lens = sk.model.encode(*LogMel(sk.features)(speech, n))
    prefix = torch.tensor([tok.sot_sequence("eng", "asr")])
    opts = DecodeOptions(
        beam_size=beam, ctc_weight=ctc_weight, ctc_top_k=max(2, int(1.5 * beam)),
        length_norm=False, max_len_ratio=ratio, max_len=int(ratio * int(enc_lens[0])),
        stop="espnet", ctc_prompt_offset=True, end_detect=False,
    )  # fmt: skip
    ids = SpecialIds(eos=tok.eos_id, blank=tok.blank_id, suppress=tuple(tok.timestamp_ids))
    ours = beam_search(sk.model, enc, enc_lens, prefix, opts, ids)[0][0].tokens
    return list(theirs[3:]), list(ours)


def table(diffs: dict, floor: tuple[float, float], searches: dict) -> list[str]:
    """Markdown rows: each compared output, the fp32 yardstick, each beam search."""
    rows = [
        "| compared | max abs difference | max abs value | within tolerance |",
        "|---|---|---|---|",
    ]
    lengths = ", ".join(f"{s:g}" for s in LENGTHS)
    for name, (d, m) in diffs.items():
        good = "yes" if d <= ATOL * max(1.0, m) else "**no**"
        rows.append(f"| {name} ({lengths} s) | {d:.2e} | {m:.1f} | {good} |")
    rows.append(f"| {FLOOR} (yardstick, not a check) | {floor[0]:.2e} | {floor[1]:.1f} | - |")
    for name, (e, s) in searches.items():
        same = "identical" if e == s else f"**differ** (ESPnet {e[:8]}..., speechkit {s[:8]}...)"
        rows.append(
            f"| Speech2Text vs speechkit beam search, {name}, 30 s | {len(e)} vs {len(s)} tokens "
            f"| - | {same} |"
        )
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=list(SIZES), default="base")
    p.add_argument("--work-dir", type=Path, default=None, help="default: a temporary directory")
    p.add_argument("--beam-ratio", type=float, default=0.05,
                   help="maxlenratio of the beam searches (x 750 encoder frames)")  # fmt: skip
    p.add_argument("--weight-noise", type=float, default=0.02,
                   help="std of the noise added to ESPnet's initial weights")  # fmt: skip
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results-md", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # ESPnet logs whole model printouts at INFO on the root logger: keep warnings only
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    zoo_name = SIZES[args.size][0]
    with contextlib.ExitStack() as stack:
        work = args.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        repo_id = f"espnet/{zoo_name.replace('-', '_')}"
        repo = work / "hub" / repo_id
        start = time.perf_counter()
        esp = write_hub_repo(repo, args.size, args.seed, args.weight_noise)
        built = time.perf_counter() - start
        from speechkit import zoo

        start = time.perf_counter()
        with local_hub(repo_id, repo) as (commit, hub):
            packed = zoo.download(
                zoo_name, cache_dir=work / "cache", progress=False, revision=commit
            )
        prefix = f"/{repo_id}/resolve/{commit}/"
        fetched = sorted(
            p.removeprefix(prefix) for m, p, _ in hub.requests if m == "GET" and prefix in p
        )
        fetch_s = time.perf_counter() - start
        sk = load_pretrained(packed)
        n_esp = sum(p.numel() for p in esp.parameters())
        n_sk = sum(p.numel() for p in sk.model.parameters())
        # A key bias adds q.b_k to every score of a query, which softmax ignores: speechkit's
        # attention has none, and the converter drops ESPnet's.
        k_bias = sum(p.numel() for name, p in esp.named_parameters() if "linear_k.bias" in name)
        print(f"ESPnet {n_esp} params, speechkit {n_sk}; comparing outputs", file=sys.stderr)
        start = time.perf_counter()
        diffs = compare(esp, sk, [wave(s, seed=i) for i, s in enumerate(LENGTHS)])
        long_wave = wave(SPEECH_LENGTH, seed=9)
        searches = {
            f"beam {b}, CTC weight {c}": beams(repo, sk, long_wave, b, c, args.beam_ratio)
            for b, c in ((1, 0.0), (3, 0.3))
        }
        compare_s = time.perf_counter() - start
    floor = diffs.pop(FLOOR)
    ok = all(d <= ATOL * max(1.0, m) for d, m in diffs.values())
    ok &= all(e == s for e, s in searches.values()) and n_esp - k_bias == n_sk
    title = f"{TITLE}: {args.size}"
    lines = [
        f"## {title}", "",
        f"ESPnet's own model with the OWSM v3.1 **{args.size}** architecture and random weights "
        f"(ESPnet's initialisation + N(0, {args.weight_noise:g}²) noise), "
        f"served as the hub repo `espnet/{zoo_name.replace('-', '_')}` from 127.0.0.1 and "
        f"fetched with `speechkit zoo`'s download of `{zoo_name}` (files: "
        f"{', '.join(f'`{f}`' for f in fetched)}); {built:.0f} s to build, {fetch_s:.0f} s to "
        f"fetch and convert, {compare_s:.0f} s to compare. Parameters: {n_esp / 1e6:.1f}M in "
        f"ESPnet, {n_sk / 1e6:.1f}M in speechkit, which has no key biases ({k_bias} values, "
        f"exact: softmax ignores them; published: {PUBLISHED_PARAMS[args.size]} "
        f"with OWSM's 50k vocabulary; this one has {sk.tokenizer.vocab_size} tokens).", "",
    ]  # fmt: skip
    lines += table(diffs, floor, searches)
    lines += [
        "",
        f"- tolerance: {ATOL:g} x max(1, max abs value) (fp32)",
        "- reference: ESPnet on one utterance at a time. In a padded batch ESPnet's conv2d "
        "subsampling mask keeps two frames more for the shorter utterances (51 instead of 49 for "
        "2 s beside 11 s), so its batched output differs from its own unbatched output; "
        "speechkit's batched output matches the unbatched reference.",
    ]
    lines += provenance_lines(shlex.join(["python", "tools/espnet_parity.py", *(argv or [])]))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.results_md:
        update_markdown(args.results_md, title, text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
