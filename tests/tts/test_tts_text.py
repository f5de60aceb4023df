"""The TTS text front end: espeak-ng phonemes for the four languages, the vocabulary, the errors
for text it cannot say, and sentence chunks for long text."""

from __future__ import annotations

import pytest

from speechkit.tts.text import (
    PhonemeVocab,
    TextError,
    check_text,
    phonemize,
    split_sentences,
)

SENTENCES = {
    "eng": "Where is the museum?",
    "deu": "Der Zug nach Genf fährt um elf Uhr ab.",
    "spa": "¿Dónde está el museo?",
    "fra": "Le train pour Genève part à onze heures.",
}


@pytest.mark.parametrize("language", sorted(SENTENCES))
def test_every_language_gives_ipa_words_and_its_final_mark(language):
    text = SENTENCES[language]
    phones = phonemize(text, language)
    assert phones[-1] == text[-1]
    words = "".join(phones[:-1]).split(" ")
    assert len(words) == len(text.split())
    assert any(p.startswith("ˈ") and len(p) > 1 for p in phones)  # stress joins its vowel
    assert "ˈ" not in phones and "ː" not in phones  # marks are never phonemes alone


def test_marks_join_their_symbols():
    assert phonemize("Uhr.", "deu") == ("ˈuː", "ɾ", ".")
    assert "ˈɔ̃" in phonemize("onze.", "fra")  # a nasal vowel: symbol + combining tilde
    assert "-" not in phonemize("Le train.", "fra")  # espeak-ng's liaison hyphen


def test_languages_differ_and_language_flags_are_dropped():
    assert phonemize("Hotel", "deu") != phonemize("Hotel", "eng")
    # espeak-ng switches German "the" to English and flags it as "(en)": the flag is not a phoneme
    phones = "".join(phonemize("Wo ist the museum.", "deu"))
    assert "(" not in phones and "en)" not in phones


@pytest.mark.parametrize("text", ["", "   ", "?!...", "\n"])
def test_empty_text_is_a_clear_error(text):
    with pytest.raises(TextError, match="nothing to say"):
        phonemize(text, "eng")


@pytest.mark.parametrize("text, char", [("日本 is far", "CJK UNIFIED"), ("hello ☃", "SNOWMAN"),
                                        ("Привет", "CYRILLIC")])  # fmt: skip
def test_characters_outside_the_scripts_are_named(text, char):
    with pytest.raises(TextError, match=char):
        phonemize(text, "eng")


def test_unknown_language_is_an_error():
    with pytest.raises(TextError, match="unknown language 'jpn'"):
        check_text("hello", "jpn")


def test_vocab_round_trip_and_unknown_phonemes(tmp_path):
    seqs = [phonemize(SENTENCES["eng"], "eng"), phonemize(SENTENCES["fra"], "fra")]
    vocab = PhonemeVocab.build(seqs)
    assert vocab.phonemes[0] == "<pad>"
    ids = vocab.encode(seqs[0])
    assert 0 not in ids and vocab.decode(ids) == "".join(seqs[0])
    vocab.save(tmp_path / "v.json")
    assert PhonemeVocab.load(tmp_path / "v.json").phonemes == vocab.phonemes
    german = phonemize("Ich möchte zwölf Brötchen.", "deu")
    with pytest.raises(TextError, match="not in the model's vocabulary"):
        PhonemeVocab.build(seqs[:1]).encode(german)


def test_unseen_stress_or_nasal_variants_fall_back_to_the_bare_symbol():
    vocab = PhonemeVocab.build([["a", "ɑ", "ˈe"]])
    assert vocab.encode(["ˈɑ̃", "ˌa", "ˈe", "aː"]) == vocab.encode(["ɑ", "a", "ˈe", "a"])
    with pytest.raises(TextError, match="'ʁ'"):
        vocab.encode(["a", "ʁ"])


def test_long_text_is_split_into_chunks_that_keep_every_word():
    text = " ".join(["This is sentence number one, and it goes on for a while."] * 40)
    chunks = split_sentences(text, max_chars=60)
    assert len(chunks) == 40 and all(len(c) <= 60 for c in chunks)
    one_long = "word " * 500
    chunks = split_sentences(one_long, max_chars=50)
    assert all(len(c) <= 50 for c in chunks)
    assert " ".join(chunks).split() == one_long.split()
