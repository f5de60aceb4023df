"""Anchor segments for weakly supervised separation (USS-style), from a tagger's frame posteriors.

A weakly labelled clip says which classes it holds, not where, and never gives a clean source.
Following USS, a sound event tagger trained on the clip labels localises each class; the
segment where a class dominates the clip is its *anchor*. Mixtures of anchors of different
classes, with the query naming one anchor's class and that anchor as the target, train a
query-conditioned separator without clean sources.

Here a clip's labels come from the corpus's clip-level annotation (``cut.custom["event"]``:
``clean`` = {speech}, ``music`` = {speech, music}, ...), or from ``cut.custom["clip_labels"]``
where a clip gives them (speech-free background clips: {music}, ...). For each label the anchor
is the window of ``window`` frames maximising the mean of ``p_label - max(p_other labels)`` (the
class present and the clip's other classes absent), so a background anchor in a clip with speech
is where the speech is weakest.

    windows = pick_anchors(frame_probs, labels, tags, window)   # [(tag, start, score), ...]
    anchor_cuts(cut, windows, frame_s, window_s)                 # truncated lhotse cuts
"""

from __future__ import annotations

import numpy as np

__all__ = ["anchor_cuts", "clip_labels", "cut_labels", "pick_anchors"]


def clip_labels(event: str) -> list[str]:
    """The weak labels of a phrasebook clip of ``event``: speech, plus the background if any."""
    return ["speech"] if event == "clean" else ["speech", event]


def cut_labels(cut) -> list[str]:
    """The weak labels of a clip: ``cut.custom["clip_labels"]`` where the clip says them (the
    speech-free clips of ``speechkit.data.background_clips``), else from its corpus event."""
    custom = cut.custom or {}
    return list(custom.get("clip_labels") or clip_labels(custom.get("event", "clean")))


def pick_anchors(
    frame_probs: np.ndarray, labels: list[str], tags: list[str], window: int
) -> list[tuple[str, int, float]]:
    """Best window per label.

    frame_probs: (T, K) tagger posteriors of one clip (valid frames only); labels: the clip's
    tags; window: anchor length in frames (the whole clip when longer). Returns (tag, start
    frame, score) per label, score = mean over the window of p_tag - max p_other-labels.
    """
    num_frames = len(frame_probs)
    window = min(window, num_frames)
    out = []
    for tag in labels:
        k = tags.index(tag)
        others = [tags.index(t) for t in labels if t != tag]
        margin = frame_probs[:, k].astype(np.float64)
        if others:
            margin = margin - frame_probs[:, others].max(axis=1)
        sums = np.convolve(margin, np.ones(window), mode="valid")  # (T - window + 1,)
        start = int(np.argmax(sums))
        out.append((tag, start, float(sums[start] / window)))
    return out


def anchor_cuts(cut, windows: list[tuple[str, int, float]], frame_s: float, window_s: float):
    """Truncated copies of ``cut`` (``window_s`` seconds from each window's start frame of
    ``frame_s`` seconds, or to the clip's end), one per anchor, with ``custom`` fields
    ``anchor_class``, ``anchor_score`` and ``clip_labels``; ids ``<cut id>-anchor-<tag>``."""
    out = []
    for tag, start, score in windows:
        offset = min(start * frame_s, max(0.0, cut.duration - 0.01))
        duration = min(window_s, cut.duration - offset)
        anchor = cut.truncate(offset=offset, duration=duration, preserve_id=True)
        anchor = anchor.with_id(f"{cut.id}-anchor-{tag}")
        anchor.custom = {
            **(cut.custom or {}),
            "anchor_class": tag,
            "anchor_score": round(score, 4),
            "clip_labels": cut_labels(cut),
        }
        out.append(anchor)
    return out
