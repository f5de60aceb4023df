"""speechkit.bin.phrasebook_texts: the grammar's sentences as a text-only supervision manifest."""

from __future__ import annotations

import json

import pytest
from lhotse import load_manifest

from speechkit.bin.phrasebook_texts import main
from speechkit.data.phrasebook.grammar import split_sentences


def _write(tmp_path, name, *args):
    out = tmp_path / f"{name}.jsonl.gz"
    assert main(["--split", "novel", "--out", str(out), *args]) == 0
    return list(load_manifest(out))


def test_parts_split_the_novel_pool_and_keep_every_translation(tmp_path, capsys):
    pool = {s.sentence_id: s for s in split_sentences(0, 0.1)["novel"]}
    halves = [_write(tmp_path, f"p{k}", "--part", f"{k}/2") for k in range(2)]
    ids = [{s.custom["sentence_id"] for s in h} for h in halves]
    assert not ids[0] & ids[1] and ids[0] | ids[1] == set(pool)
    assert min(len(i) for i in ids) > len(pool) / 4  # a split, not everything in one part
    for sup in halves[0]:
        s = pool[sup.custom["sentence_id"]]
        assert sup.text == s.texts[sup.language] and sup.duration == 0.0
        assert sup.custom["translations"] == {k: v for k, v in s.texts.items() if k != sup.language}
    assert len(halves[0]) == 4 * len(ids[0])  # every language of every sentence
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert printed["sentences"] == len(ids[0]) and printed["supervisions"] == len(halves[0])
    english = _write(tmp_path, "eng", "--languages", "eng")
    assert {s.language for s in english} == {"eng"} and len(english) == len(pool)


@pytest.mark.parametrize("part", ["2/2", "x", "1/0", "-1/2"])
def test_bad_part_is_a_usage_error(tmp_path, part, capsys):
    with pytest.raises(SystemExit):
        main(["--split", "novel", "--out", str(tmp_path / "x.jsonl.gz"), "--part", part])
    assert "--part" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl.gz").exists()
