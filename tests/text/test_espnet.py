"""EspnetTokenizer: ESPnet's token list order, OWSM specials, timestamps, storage."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "convert"))
import espnet_fakes as ef  # noqa: E402

from speechkit.decode.options import SpecialIds  # noqa: E402
from speechkit.text.espnet import EspnetTokenizer, TokenListError  # noqa: E402


@pytest.fixture(scope="module")
def parts():
    bpe = ef.train_bpe()
    return bpe, ef.token_list(bpe)


def test_ids_follow_the_token_list_not_sentencepiece(parts):
    bpe, tokens = parts
    tok = EspnetTokenizer(bpe, tokens)
    ids = tok.encode("the cat sat")
    assert [tokens[i] for i in ids] == tok.sp.encode("the cat sat", out_type=str)
    assert tok.decode(ids) == "the cat sat"
    assert (tok.blank_id, tok.sos_id, tok.eos_id) == (0, len(tokens) - 3, len(tokens) - 2)
    assert tok.sot_sequence("deu", "st_eng") == [
        tokens.index(t) for t in ("<sos>", "<deu>", "<st_eng>", "<notimestamps>")
    ]
    assert tok.languages == ["eng", "deu"] and tok.tasks == ["asr", "st_eng", "st_deu"]


def test_timestamps_come_from_the_list(parts):
    bpe, tokens = parts
    tok = EspnetTokenizer(bpe, tokens)
    assert tok.time_resolution == pytest.approx(ef.RESOLUTION)
    assert tok.time_of(tok.timestamp_id(0.5)) == pytest.approx(0.5)
    assert tok.decode([tok.timestamp_id(0.2), *tok.encode("hello"), tok.eos_id]) == "hello"
    coarse = [t for t in tokens if not t.startswith("<0.") or t in ("<0.00>", "<0.10>", "<0.20>")]
    assert EspnetTokenizer(bpe, coarse).time_resolution == pytest.approx(0.1)


def test_suppress_ids_and_state_roundtrip(parts, tmp_path):
    bpe, tokens = parts
    tok = EspnetTokenizer(bpe, tokens)
    ids = SpecialIds.from_tokenizer(tok)
    assert tok.eos_id not in ids.suppress and tok.sos_id in ids.suppress
    assert set(tok.timestamp_ids) <= set(ids.suppress)
    assert EspnetTokenizer.from_state_dict(tok.state_dict()).token_list == tokens
    tok.save(tmp_path)
    assert EspnetTokenizer.is_espnet_dir(tmp_path)
    assert EspnetTokenizer.load(tmp_path).encode("a dog") == tok.encode("a dog")


def test_bad_token_lists_are_named(parts):
    bpe, tokens = parts
    with pytest.raises(TokenListError, match="not pieces of the BPE model.*qqq"):
        EspnetTokenizer(bpe, tokens[:-5] + ["▁qqq"] + tokens[-5:])
    with pytest.raises(TokenListError, match="<sop>"):
        EspnetTokenizer(bpe, [t for t in tokens if t != "<sop>"])
