"""The RESULTS table and gate-usage pictures of the pruning arms (``speechkit prune-arms report``).

Reads, per arm and seed (``EXP/<arm>/s<seed>``, written by ``speechkit prune-arms decode`` and
``bench``): ``decode_<test>/scores.json`` (``speechkit score``), ``decode_<test>/
decode_stats.json`` (GFLOPs and sparsity under ``gates``) and ``bench_test_seen.json``
(``speechkit bench prune``). One row per arm (the language arms a second row decoded with the
oracle language), the mean over seeds with [min, max] where they differ. Columns: English
WER and en->X BLEU (mean of the directions; cased sacreBLEU) on test_seen and test_novel, X->en
BLEU, GFLOPs per item (encoder / decoder), achieved sparsity (FLOP-weighted, gated modules),
GFLOPs saved against the full model (whole model: the never-gated front end, output layer and,
for language arms, the LID step included: the issue's "fewer GFLOPs"), the same counted as the
beam search runs the decoder (``gflops_search``, ``decode/gated.py``; "-" for decodes made
before it was recorded), RTFx of the gated and
full models at batch 1 and batched, measured interleaved.

Pictures beside the results file, from ``gates.jsonl`` of test_seen: the keep rate of each gated
module (rows: module kind, columns: layer) per spoken language (``gates_<arm>.png``), per
background event class (``gates_<arm>_event.png``, the cuts' recorded ``event``) and per speaker
group (``gates_<arm>_speaker.png``: k-means of the stored speaker d-vectors, the same vectors
the speaker arms are conditioned on, so a group is "voices that sound alike" to the gate
predictor); an FFN gated per channel group shows the mean over its groups.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

from speechkit.report import provenance_lines, update_markdown

__all__ = [
    "event_groups",
    "gate_pictures",
    "gate_usage",
    "kmeans",
    "speaker_groups",
    "write_report",
]

TITLE = "Context-driven dynamic pruning: arms at one budget"


def _scores(decode_dir: Path) -> dict[str, float]:
    path = decode_dir / "scores.json"
    if not path.is_file():
        return {}
    rows = {r["name"]: r for r in json.loads(path.read_text())}
    out = {}
    if "asr_eng" in rows:
        out["wer"] = rows["asr_eng"]["wer"]["rate"]
    en_x = [r["bleu"]["cased"] for n, r in rows.items() if n.startswith("st_eng-")]
    x_en = [
        r["bleu"]["cased"] for n, r in rows.items() if n.startswith("st_") and n.endswith("-eng")
    ]
    if en_x:
        out["en_x"] = statistics.mean(en_x)
    if x_en:
        out["x_en"] = statistics.mean(x_en)
    stats = decode_dir / "decode_stats.json"
    gates = json.loads(stats.read_text()).get("gates") if stats.is_file() else None
    if gates:
        out.update(gflops_enc=gates["gflops_enc"], gflops_dec=gates["gflops_dec"],
                   sparsity=100 * gates["sparsity"])  # fmt: skip
        if gates.get("gflops_full"):  # the whole model: front end and output layer included
            out["fewer"] = 100 * (
                1 - (gates["gflops_enc"] + gates["gflops_dec"]) / gates["gflops_full"]
            )
        if gates.get("gflops_full_search"):  # as a beam search runs the decoder (decode/gated.py)
            out["fewer_beam"] = 100 * (1 - gates["gflops_search"] / gates["gflops_full_search"])
        if "lid_accuracy" in gates:
            out["lid"] = 100 * gates["lid_accuracy"]
    return out


def _bench(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    res = json.loads(path.read_text())
    out = {}
    for key, setting in (("b1", "batch1"), ("bb", "batched")):
        r = res[setting]
        out.update({f"{key}_gated": r["rtfx_gated"], f"{key}_full": r["rtfx_full"],
                    f"{key}_speedup": r["speedup_total"]})  # fmt: skip
    return out


def _cell(values: list[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "-"
    text = fmt.format(round(statistics.mean(values), 6) + 0.0)  # + 0.0: no "-0.0"
    if min(values) != max(values):
        text += f" [{fmt.format(min(values))}, {fmt.format(max(values))}]"
    return text


def _row(label: str, seeds: list[dict]) -> str:
    get = lambda key: [s[key] for s in seeds if key in s]  # noqa: E731
    cells = [label, str(len(seeds))]
    for key in ("seen_wer", "novel_wer", "seen_en_x", "novel_en_x", "seen_x_en", "novel_x_en"):
        cells.append(_cell(get(key)))
    cells.append(
        f"{_cell(get('seen_gflops_enc'), '{:.3f}')} / {_cell(get('seen_gflops_dec'), '{:.3f}')}"
    )
    cells.append(_cell(get("seen_sparsity")))
    cells.append(_cell(get("seen_fewer")))
    cells.append(_cell(get("seen_fewer_beam")))
    for key in ("b1", "bb"):
        gated, full, speed = get(f"{key}_gated"), get(f"{key}_full"), get(f"{key}_speedup")
        cells.append(
            f"{_cell(gated)} / {_cell(full)} ({_cell(speed, '{:.2f}')}x)" if gated else "-"
        )
    cells.append(_cell(get("seen_lid")))
    return "| " + " | ".join(cells) + " |"


def gate_usage(cfg: dict, rows: list[str]) -> tuple[list[str], list[list[float]]]:
    """Row labels and the keep rate grid [module kind][layer] of the gate strings ``rows``
    (encoder then decoder gates, "1" = on) of a model config dict. An FFN with channel-group
    gates (``gate_ffn_groups``) has one gate per group; its cell is their mean."""
    enc_kinds = (
        ["ffn1", "attn", "cgmlp", "ffn2"]
        if cfg["encoder_type"] == "ebranchformer"
        else ["attn", "ffn"]
    )
    dec_kinds = ["self_attn", "cross_attn", "ffn"]
    ne, nd = cfg["encoder_layers"], cfg["decoder_layers"]
    groups = cfg.get("gate_ffn_groups", 1)
    cells = []  # the (layer, row) cell of each gate, in gate order
    for n_layers, kinds, row0 in ((ne, enc_kinds, 0), (nd, dec_kinds, len(enc_kinds))):
        for layer in range(n_layers):
            for row, kind in enumerate(kinds, row0):
                cells += [(layer, row)] * (groups if kind.startswith("ffn") else 1)
    rates: dict[tuple[int, int], list[float]] = defaultdict(list)
    for i, cell in enumerate(cells):
        rates[cell].append(sum(int(r[i]) for r in rows) / len(rows))
    grid = [[float("nan")] * max(ne, nd) for _ in range(len(enc_kinds) + len(dec_kinds))]
    for (layer, row), values in rates.items():
        grid[row][layer] = statistics.mean(values)
    return [f"enc {k}" for k in enc_kinds] + [f"dec {k}" for k in dec_kinds], grid


def _test_seen_gates(run: Path, tag: str = "") -> dict[str, dict[str, str]]:
    """Per spoken language, cut id -> gate string (encoder then decoder) from the ASR outputs of
    ``decode_test_seen<tag>`` (each cut is in one ASR output, so every cut counts once)."""
    per_lang: dict[str, dict[str, str]] = defaultdict(dict)
    for path in sorted((run / f"decode_test_seen{tag}").glob("asr_*/gates.jsonl")):
        lang = path.parent.name[len("asr_") :]
        for line in path.open():
            r = json.loads(line)
            per_lang[lang][r["id"]] = r["enc_gates"] + r["dec_gates"]
    return per_lang


def event_groups(cuts_path: Path, ids: set[str]) -> dict[str, list[str]]:
    """Cut ids by their recorded background event (``cut.custom["event"]``); {} when the
    manifest has none."""
    from lhotse import load_manifest_lazy

    out: dict[str, list[str]] = defaultdict(list)
    for cut in load_manifest_lazy(cuts_path):
        event = (cut.custom or {}).get("event")
        if cut.id in ids and event is not None:
            out[str(event)].append(cut.id)
    return dict(out)


def kmeans(x, k: int, iters: int = 50):
    """Cluster index of each row of ``x`` (N, D): Lloyd's k-means on cosine distance from a
    farthest-point start (deterministic, so the pictures are reproducible). k-means is 20
    lines here; sklearn is not a dependency of speechkit."""
    import torch

    x = torch.nn.functional.normalize(x.float(), dim=1)
    k = min(k, len(x))
    centres = [0]
    for _ in range(1, k):
        sim = (x @ x[centres].T).max(dim=1).values
        centres.append(int(sim.argmin()))
    c = x[centres].clone()
    assign = torch.zeros(len(x), dtype=torch.long)
    for it in range(iters):
        new = (x @ c.T).argmax(dim=1)
        if it and torch.equal(new, assign):  # converged
            break
        assign = new
        for j in range(k):
            if (assign == j).any():
                c[j] = torch.nn.functional.normalize(x[assign == j].mean(0), dim=0)
    return assign


def speaker_groups(contexts: Path, ids: set[str], k: int = 4) -> dict[str, list[str]]:
    """Cut ids in ``k`` speaker groups: k-means of the stored speaker vectors (the d-vectors the
    gates were conditioned on); cuts without a vector form the group "unknown". {} without a
    speaker store."""
    import torch

    from speechkit.data.contexts import ContextStore, context_path

    if not context_path(contexts, "speaker").is_file():
        return {}
    store = ContextStore.load(contexts, "speaker")
    known = sorted(c for c in ids if c in store.index and bool(store.valid[store.index[c]]))
    out: dict[str, list[str]] = defaultdict(list)
    if known:
        vectors = torch.stack([store.vectors[store.index[c]] for c in known])
        for cid, g in zip(known, kmeans(vectors, k).tolist()):
            out[f"speakers {g}"].append(cid)
    unknown = sorted(ids - set(known))
    if unknown:
        out["unknown"] = unknown
    return dict(out)


def _grid_picture(cfg: dict, groups: dict[str, list[str]], title: str, out_png: Path) -> None:
    """One keep-rate panel (module kind x layer) per group of gate strings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(2.6 * len(groups) + 1.2, 3.6), squeeze=False)
    for ax, (name, rows) in zip(axes[0], groups.items()):
        labels, grid = gate_usage(cfg, rows)
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(f"{name} ({len(rows)} utts)", fontsize=9)
        ax.set_yticks(range(len(grid)), labels if ax is axes[0][0] else [])
        ax.set_xticks(range(len(grid[0])))
        ax.set_xlabel("layer")
    fig.colorbar(im, ax=axes[0].tolist(), label="keep rate")
    fig.suptitle(title)
    fig.savefig(out_png, dpi=90, bbox_inches="tight")
    plt.close(fig)


def gate_pictures(run: Path, out_dir: Path, arm: str, test_cuts: Path | None = None,
                  contexts: Path | None = None, tag: str = "",
                  decoded: str | None = None) -> list[str]:  # fmt: skip
    """The keep rate of each gated module on test_seen, per spoken language
    (``gates_<arm>.png``), per background event (``gates_<arm>_event.png``, from the cuts'
    ``event`` in ``test_cuts``) and per speaker group (``gates_<arm>_speaker.png``, k-means of
    the speaker vectors in ``contexts``). ``tag`` names the pictures; they read the gates of
    ``decode_test_seen<decoded>`` (default: ``tag``). Returns the file names written."""
    import yaml

    per_lang = _test_seen_gates(run, tag if decoded is None else decoded)
    if not per_lang or not (run / "config.yaml").is_file():
        return []
    cfg = yaml.safe_load((run / "config.yaml").read_text())["model"]
    gates = {cid: g for by_id in per_lang.values() for cid, g in by_id.items()}
    name = run.parent.name
    written = []
    panels = {lang: list(by_id.values()) for lang, by_id in sorted(per_lang.items())}
    _grid_picture(cfg, panels, f"{name}: gate usage per language (test_seen)",
                  out_dir / f"gates_{arm}{tag}.png")  # fmt: skip
    written.append(f"gates_{arm}{tag}.png")
    for kind, groups in (
        ("event", event_groups(test_cuts, set(gates)) if test_cuts else {}),
        ("speaker", speaker_groups(contexts, set(gates)) if contexts else {}),
    ):
        if groups:
            panels = {g: [gates[c] for c in ids] for g, ids in sorted(groups.items())}
            _grid_picture(cfg, panels, f"{name}: gate usage per {kind} group (test_seen)",
                          out_dir / f"gates_{arm}{tag}_{kind}.png")  # fmt: skip
            written.append(f"gates_{arm}{tag}_{kind}.png")
    return written


def ctc_suffix(ctc_weight: float) -> str:
    """The decode directories' suffix of a joint CTC weight (none for attention alone)."""
    return f"_ctc{ctc_weight:g}" if ctc_weight > 0 else ""


def write_report(exp: Path, arms: list[str], seeds: list[int], budget: float,
                 results_md: Path | None, command: str = "", test_cuts: Path | None = None,
                 contexts: Path | None = None, tag: str = "",
                 title: str | None = None, ctc_weight: float = 0.0) -> list[str]:  # fmt: skip
    """The table (and pictures beside ``results_md``, in a section ``title``); returns the
    markdown lines. ``tag``: the suffix of the decode and bench outputs to read
    (``prune-arms decode --tag``); the full arm's are untagged. ``ctc_weight``: read the
    decodes of that joint CTC weight (every arm's, :func:`ctc_suffix`)."""
    from speechkit.bin.prune_arms import LANGUAGE_ARMS

    header = ("| arm | seeds | WER eng seen | WER eng novel | en->X BLEU seen | en->X BLEU novel "
              "| X->en BLEU seen | X->en BLEU novel | GFLOPs/item enc / dec | sparsity % "
              "| fewer GFLOPs % | fewer GFLOPs % (beam search) "
              "| RTFx batch 1 gated / full (speed-up) | RTFx batched gated / full (speed-up) "
              "| LID acc % |")  # fmt: skip
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    pictures = []
    for arm in arms:
        variants = [("", arm)] + (
            [("_oracle", f"{arm} (oracle language)")] if arm in LANGUAGE_ARMS else []
        )
        for suffix, label in variants:
            per_seed = []
            for seed in seeds:
                run = exp / arm / f"s{seed}"
                decoded = f"{'' if arm == 'full' else tag}{ctc_suffix(ctc_weight)}{suffix}"
                figures = {}
                for test in ("test_seen", "test_novel"):
                    part = test.split("_")[1]
                    figures.update(
                        {
                            f"{part}_{k}": v
                            for k, v in _scores(run / f"decode_{test}{decoded}").items()
                        }
                    )
                if not suffix:
                    figures.update(_bench(run / f"bench_test_seen{tag}.json"))
                if figures:
                    per_seed.append(figures)
            if per_seed:
                lines.append(_row(label, per_seed))
        run0 = exp / arm / f"s{seeds[0]}"
        if results_md is not None and arm != "full":
            for png in gate_pictures(run0, results_md.parent, arm, test_cuts, contexts, tag,
                                     decoded=tag + ctc_suffix(ctc_weight)):  # fmt: skip
                kind = next((k for k in ("event", "speaker") if png.endswith(f"_{k}.png")), "")
                pictures.append(f"![gate usage of {arm} per {kind or 'language'}]({png})")
    lines += ["", f"Budget {budget} (fraction of the gated modules' FLOPs to keep) for every gated arm.",
              "", *pictures]  # fmt: skip
    if results_md is not None:
        title = title or TITLE
        section = "\n".join([f"## {title}", "", *provenance_lines(command), "", *lines, ""])
        update_markdown(results_md, title, section)
    print("\n".join(lines))
    return lines


def main(argv: list[str] | None = None) -> int:
    """``speechkit prune-report ARGS`` is ``speechkit prune-arms report ARGS``."""
    import sys

    from speechkit.bin import prune_arms

    return prune_arms.main(["report", *(sys.argv[1:] if argv is None else argv)])
