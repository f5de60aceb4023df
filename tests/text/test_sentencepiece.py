"""Tests for speechkit/tokenizer.py and the train_tokenizer entry point."""

import os

import pytest
from lhotse import CutSet, SupervisionSegment
from lhotse.testing.dummies import dummy_cut

from speechkit.bin import train_tokenizer
from speechkit.text.sentencepiece import SPECIAL_TOKENS, SentencePieceTokenizer, TokenizerConfig

TEXTS = [
    "the cat sits on the mat",
    "die katze schläft auf der straße",
    "el niño come mañana por la mañana",
    "le café est très bon à paris",
    "über den fluss und über die brücke",
    "où est la bibliothèque",
] * 10
LANGS = ["eng", "deu", "spa", "fra"]
TASKS = ["asr", "st_eng", "st_deu", "st_spa", "st_fra"]


@pytest.fixture(scope="module")
def tok():
    return SentencePieceTokenizer.train(TEXTS, None, TokenizerConfig(vocab_size=80), LANGS, TASKS)


def test_special_token_layout(tok):
    for i, name in enumerate(SPECIAL_TOKENS):
        assert tok.id_to_token(i) == name
    assert (tok.blank_id, tok.unk_id, tok.sos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.lang_id("eng") == len(SPECIAL_TOKENS)
    assert tok.lang_id("fra") == len(SPECIAL_TOKENS) + 3
    assert tok.task_id("asr") == len(SPECIAL_TOKENS) + len(LANGS)
    assert tok.id_to_token(tok.task_id("st_deu")) == "<st_deu>"
    assert tok.sot_sequence("deu", "st_eng") == [
        tok.sos_id,
        tok.lang_id("deu"),
        tok.task_id("st_eng"),
        tok.notimestamps_id,
    ]
    assert tok.vocab_size == tok.num_special + tok.sp.get_piece_size()
    with pytest.raises(KeyError, match="jpn"):
        tok.lang_id("jpn")


@pytest.mark.parametrize(
    "text",
    [
        "die katze schläft auf der straße",
        "el niño come mañana",
        "le café très bon",
        "über brücke",
    ],
)
def test_roundtrip_accents(tok, text):
    ids = tok.encode(text)
    assert ids and all(tok.num_special <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


def test_unseen_characters_map_to_unk(tok):
    ids = tok.encode("the cat 猫")
    assert tok.unk_id in ids
    assert all(i == tok.unk_id or i >= tok.num_special for i in ids)
    assert tok.decode(ids).strip() == "the cat"


def test_decode_drops_special_tokens(tok):
    ids = tok.sot_sequence("eng", "asr") + tok.encode("the cat") + [tok.eos_id, tok.blank_id]
    assert tok.decode(ids) == "the cat"


def test_save_load_and_state_dict(tok, tmp_path):
    tok.save(tmp_path)
    loaded = SentencePieceTokenizer.load(tmp_path)
    restored = SentencePieceTokenizer.from_state_dict(tok.state_dict())
    state = tok.state_dict()
    assert isinstance(state["sp_model"], bytes) and state["languages"] == LANGS
    for other in (loaded, restored):
        assert other.vocab_size == tok.vocab_size
        assert other.encode("el niño") == tok.encode("el niño")
        assert other.task_id("st_fra") == tok.task_id("st_fra")
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        SentencePieceTokenizer.load(tmp_path / "missing")


def test_bpe_and_bad_config():
    tok = SentencePieceTokenizer.train(
        TEXTS, None, TokenizerConfig(vocab_size=60, model_type="bpe"), ["eng"], ["asr"]
    )
    assert tok.decode(tok.encode("the cat sits")) == "the cat sits"
    from speechkit.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="vocab_size"):
        from_dict(TokenizerConfig, {"vocab_size": 2})


def _write_cuts(path):
    cuts = []
    for i, (text, lang, tr) in enumerate(
        [
            ("hello world", "eng", {"deu": "hallo welt"}),
            ("buenos días señor", "spa", {"eng": "good day sir"}),
        ]
        * 5
    ):
        cut = dummy_cut(i, duration=1.0)
        cut.supervisions = [
            SupervisionSegment(
                f"s{i}",
                cut.recording_id,
                0,
                1.0,
                text=text,
                language=lang,
                custom={"translations": tr},
            )
        ]
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(path)


def test_train_tokenizer_cli(tmp_path, caplog):
    cuts = tmp_path / "cuts.jsonl.gz"
    _write_cuts(cuts)
    conf = tmp_path / "exp.yaml"
    conf.write_text("model: {whatever: 1}\ntokenizer:\n  vocab_size: 40\n")
    out = tmp_path / "tok"
    assert (
        train_tokenizer.main(["--cuts", str(cuts), "--config", str(conf), "--out", str(out)]) == 0
    )
    tok = SentencePieceTokenizer.load(out)
    assert tok.languages == ["deu", "eng", "spa"]
    assert tok.tasks == ["asr", "st_deu", "st_eng", "st_spa"]
    assert tok.decode(tok.encode("días")) == "días"  # translations and transcripts both seen

    mtime = (out / "tokenizer.model").stat().st_mtime
    caplog.set_level("INFO")
    assert (
        train_tokenizer.main(["--cuts", str(cuts), "--config", str(conf), "--out", str(out)]) == 0
    )
    assert (out / "tokenizer.model").stat().st_mtime == mtime
    assert "skipping" in caplog.text

    # A newer input retrains.
    os.utime(cuts, (mtime + 10, mtime + 10))
    assert (
        train_tokenizer.main(["--cuts", str(cuts), "--config", str(conf), "--out", str(out)]) == 0
    )
    assert (out / "tokenizer.model").stat().st_mtime != mtime


def test_train_tokenizer_cli_rejects_unknown_key(tmp_path):
    cuts = tmp_path / "cuts.jsonl.gz"
    _write_cuts(cuts)
    conf = tmp_path / "exp.yaml"
    conf.write_text("tokenizer:\n  vocab_sise: 40\n")
    from speechkit.config import ConfigError

    with pytest.raises(ConfigError, match="vocab_sise"):
        train_tokenizer.main(
            ["--cuts", str(cuts), "--config", str(conf), "--out", str(tmp_path / "t")]
        )
