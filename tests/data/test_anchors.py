"""Anchor mining: the window where a clip's class dominates, cut out with its labels."""

from __future__ import annotations

import numpy as np
from lhotse.testing.dummies import dummy_cut

from speechkit.data.anchors import anchor_cuts, clip_labels, cut_labels, pick_anchors

TAGS = ["speech", "noise", "babble", "beeps", "music"]


def test_labels_of_clips():
    assert clip_labels("clean") == ["speech"] and clip_labels("music") == ["speech", "music"]
    cut = dummy_cut(0, duration=2.0)
    cut.custom = {"event": "music"}
    assert cut_labels(cut) == ["speech", "music"]
    cut.custom["clip_labels"] = ["music"]  # a speech-free clip says so
    assert cut_labels(cut) == ["music"]
    assert anchor_cuts(cut, [("music", 0, 0.9)], 0.02, 1.0)[0].custom["clip_labels"] == ["music"]


def test_each_label_gets_the_window_where_it_dominates_the_other_labels():
    probs = np.full((100, 5), 0.05)
    probs[:, 0] = 0.9  # speech almost everywhere ...
    probs[60:80, 0] = 0.1  # ... but weak here,
    probs[:, 4] = 0.3
    probs[55:85, 4] = 0.9  # where the music is strong
    picked = dict((t, (s, sc)) for t, s, sc in pick_anchors(probs, ["speech", "music"], TAGS, 20))
    assert picked["music"][0] == 60 and picked["music"][1] > 0.7
    assert not 40 < picked["speech"][0] < 80 and picked["speech"][1] > 0.5
    # a window longer than the clip is the whole clip
    assert pick_anchors(probs[:10], ["speech"], TAGS, 50)[0][1] == 0


def test_anchor_cuts_are_truncated_and_labelled():
    cut = dummy_cut(0, duration=2.0)
    cut.custom = {"event": "music"}
    anchors = anchor_cuts(cut, [("music", 60, 0.8), ("speech", 90, 0.5)], 0.02, 1.0)
    assert [a.id for a in anchors] == ["dummy-mono-cut-0000-anchor-music",
                                       "dummy-mono-cut-0000-anchor-speech"]  # fmt: skip
    assert abs(anchors[0].start - 1.2) < 1e-9 and abs(anchors[0].duration - 0.8) < 1e-9
    assert abs(anchors[1].duration - 0.2) < 1e-9  # to the clip's end
    assert anchors[0].custom["anchor_class"] == "music"
    assert anchors[0].custom["clip_labels"] == ["speech", "music"]
