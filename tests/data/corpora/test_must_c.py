"""MuST-C preparation: lhotse's recipe on a miniature corpus, the ST cut fields, clear errors."""

from __future__ import annotations

import json

import pytest
from corpus_fakes import MUST_C_SENTENCES, write_must_c
from lhotse import CutSet

from speechkit.bin import prepare_must_c as cli
from speechkit.config import ConfigError
from speechkit.data.corpora import CorpusError
from speechkit.data.corpora.must_c import (
    MustCConfig,
    check_must_c,
    find_must_c,
    prepare_must_c,
)
from speechkit.data.tasks import cut_tasks, target_text

PAIRS = ["en-de", "en-fr"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_must_c(tmp_path_factory.mktemp("mustc"), pairs=tuple(PAIRS))


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    cfg = MustCConfig(data_root=str(corpus), out_dir=str(out), language_pairs=PAIRS)
    return out, prepare_must_c(cfg)


def _sentences(split_dir, split, tgt):
    txt = split_dir / "txt"
    english = (txt / f"{split}.en").read_text().splitlines()
    return english, (txt / f"{split}.{tgt}").read_text(encoding="utf-8").splitlines()


def test_writes_one_manifest_per_split_with_every_segment(prepared):
    out, paths = prepared
    assert sorted(paths) == ["dev", "train", "tst-COMMON", "tst-HE"]
    assert paths["tst-COMMON"] == out / "cuts_tst_COMMON.jsonl.gz"
    counts = {split: len(CutSet.from_file(p)) for split, p in paths.items()}
    # Three segments per talk and pair; train has two talks.
    assert counts == {"train": 12, "dev": 6, "tst-COMMON": 6, "tst-HE": 6}


def test_cuts_carry_the_phrasebook_st_fields(prepared, corpus):
    _, paths = prepared
    cuts = CutSet.from_file(paths["train"]).to_eager()
    english, german = _sentences(corpus / "en-de/data/train", "train", "de")
    # The second talk's first segment: the yaml's fourth line, the text files' fourth lines.
    cut = cuts["en-de-ted_1002-0000"]
    (sup,) = cut.supervisions
    assert sup.text == english[3] and sup.language == "eng"
    assert sup.custom["translations"] == {"deu": german[3]}
    assert sup.speaker == "must_c-spk.1002" and cut.custom == {"event": "clean"}
    # The tasks and decoder texts the S2T dataset and the decoder derive from these fields.
    assert cut_tasks(cut, ["eng"], ["eng-deu"]) == ["asr", "st_deu"]
    assert target_text(cut, "asr") == english[3] and target_text(cut, "st_deu") == german[3]
    assert "ß" in cuts["en-de-ted_1001-0001"].supervisions[0].custom["translations"]["deu"]
    assert "text_prev" not in sup.custom  # the first segment of its talk has no prompt


def test_each_cut_is_its_segment_of_the_talk(prepared, corpus):
    _, paths = prepared
    cut = CutSet.from_file(paths["train"]).to_eager()["en-de-ted_1001-0002"]
    segment = (corpus / "en-de/data/train/txt/train.yaml").read_text().splitlines()[2]
    assert f"offset: {cut.start:.6f}" in segment and f"duration: {cut.duration:.6f}" in segment
    assert cut.supervisions[0].start == 0 and cut.supervisions[0].duration == cut.duration
    assert cut.load_audio().shape == (1, round(cut.duration * 16000))
    assert abs(cut.load_audio()).max() > 0.2  # the tone, not the silence between segments


def test_segments_know_the_preceding_segment_of_their_talk(prepared):
    _, paths = prepared
    cuts = CutSet.from_file(paths["train"]).to_eager()
    sup = cuts["en-de-ted_1001-0002"].supervisions[0]
    previous = cuts["en-de-ted_1001-0001"].supervisions[0]
    assert sup.custom["text_prev"] == previous.text
    assert sup.custom["translations_prev"] == previous.custom["translations"]


def test_language_pairs_share_a_manifest_with_distinct_ids(prepared):
    _, paths = prepared
    cuts = list(CutSet.from_file(paths["tst-COMMON"]))
    assert len(cuts) == 6 and len({c.id for c in cuts}) == 6
    targets = {c.id.rsplit("-", 2)[0]: set(c.supervisions[0].custom["translations"]) for c in cuts}
    assert targets == {"en-de": {"deu"}, "en-fr": {"fra"}}
    french = {s[1]["fr"] for s in MUST_C_SENTENCES}
    fr_cuts = [c for c in cuts if c.id.startswith("en-fr-")]
    assert all(c.supervisions[0].custom["translations"]["fra"] in french for c in fr_cuts)


def test_a_complete_preparation_is_kept(prepared, corpus, caplog):
    out, paths = prepared
    before = paths["train"].stat().st_mtime_ns
    with caplog.at_level("INFO"):
        prepare_must_c(MustCConfig(data_root=str(corpus), out_dir=str(out), language_pairs=PAIRS))
    assert "skip:" in caplog.text
    assert paths["train"].stat().st_mtime_ns == before
    assert json.loads((out / "prepare_args.json").read_text())["language_pairs"] == PAIRS


def test_other_language_pairs_prepare_again(prepared, corpus):
    out, paths = prepared
    prepare_must_c(MustCConfig(data_root=str(corpus), out_dir=str(out)))  # en-de alone
    assert {c.id.rsplit("-", 2)[0] for c in CutSet.from_file(paths["dev"])} == {"en-de"}
    prepare_must_c(MustCConfig(data_root=str(corpus), out_dir=str(out), language_pairs=PAIRS))


def test_data_root_may_be_the_pair_directory(corpus, tmp_path):
    assert find_must_c(corpus, ["en-de"]) == corpus
    assert find_must_c(corpus / "en-de", ["en-de"]) == corpus
    with pytest.raises(CorpusError, match="holds none of en-it"):
        find_must_c(corpus, ["en-it"])
    with pytest.raises(CorpusError, match="(?s)does not exist.*ict.fbk.eu/must-c-releases"):
        find_must_c(tmp_path / "nowhere", ["en-de"])


def test_download_says_where_to_get_the_corpus(corpus, tmp_path):
    cfg = MustCConfig(data_root=str(corpus), out_dir=str(tmp_path / "o"), download=True)
    with pytest.raises(CorpusError, match="licence form at https://ict.fbk.eu/must-c-releases/"):
        prepare_must_c(cfg)
    assert not (tmp_path / "o").exists()


def test_missing_and_partial_parts_are_listed(tmp_path):
    root = write_must_c(tmp_path, splits=("train", "dev", "tst-COMMON"))
    data = root / "en-de" / "data"
    (data / "train/wav/ted_1002.wav").unlink()
    (data / "dev/txt/dev.de").unlink()
    with open(data / "tst-COMMON/txt/tst-COMMON.en", "a") as f:
        f.write("An extra line.\n")
    with pytest.raises(CorpusError) as err:
        check_must_c(root, ["en-de"])
    message = str(err.value)
    assert "en-de/train: 1 of 2 talks in train.yaml have no wav file" in message
    assert "ted_1002.wav" in message and "ted_1001.wav" not in message
    assert f"en-de/dev: missing {data / 'dev/txt/dev.de'}" in message
    assert "en-de/tst-COMMON: 3 segments in tst-COMMON.yaml but 4 lines in" in message
    assert f"en-de/tst-HE: directory {data / 'tst-HE'} is missing" in message
    assert "ict.fbk.eu" in message


def test_a_broken_yaml_is_named(tmp_path):
    root = write_must_c(tmp_path)
    (root / "en-de/data/dev/txt/dev.yaml").write_text("- {duration: 1.0, offset: [\n")
    (root / "en-de/data/tst-HE/txt/tst-HE.yaml").write_text("- {duration: 1.0}\n")
    with pytest.raises(CorpusError) as err:
        check_must_c(root, ["en-de"])
    assert "en-de/dev: " in str(err.value) and "dev.yaml is not YAML" in str(err.value)
    assert "tst-HE.yaml is not a list of segments with keys" in str(err.value)
    assert "en-de/train" not in str(err.value)  # complete splits pass


def test_nothing_is_written_for_an_incomplete_corpus(tmp_path):
    write_must_c(tmp_path / "c", splits=("train", "dev", "tst-COMMON"))
    cfg = MustCConfig(data_root=str(tmp_path / "c"), out_dir=str(tmp_path / "out"))
    with pytest.raises(CorpusError, match="en-de/tst-HE: directory"):
        prepare_must_c(cfg)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("pairs", [["de-en"], ["en-xx"], [], ["en-de", "en-de"]])
def test_bad_language_pairs_are_config_errors(pairs):
    with pytest.raises(ConfigError, match="language.pairs|language pair"):
        MustCConfig(data_root=".", out_dir=".", language_pairs=pairs)


def test_cli_reports_a_missing_pair_and_download_with_exit_status_1(corpus, tmp_path, caplog):
    argv = ["--data-root", str(corpus), "--out", str(tmp_path / "o")]
    assert cli.main([*argv, "--language-pairs", "en-es"]) == 1
    assert "holds none of en-es" in caplog.text
    assert cli.main([*argv, "--download", "true"]) == 1
    assert "licence form" in caplog.text
    with pytest.raises(SystemExit):
        cli.main([*argv, "--download", "maybe"])
