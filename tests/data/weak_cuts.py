"""Text-only cuts for the weak-transcript tests (their audio is never read)."""

from lhotse import AudioSource, MonoCut, Recording, SupervisionSegment

TEXTS = {
    "eng": ["where is the station", "i would like two coffees please", "the bus leaves at nine"],
    "deu": ["wo ist der bahnhof", "ich möchte zwei kaffee bitte", "der bus fährt um neun"],
}


def text_cut(cut_id: str, lang: str, text: str, seconds: float = 2.0, **sup_custom) -> MonoCut:
    rec = Recording(
        id=cut_id,
        sources=[AudioSource(type="file", channels=[0], source=f"/nonexistent/{cut_id}.flac")],
        sampling_rate=16000,
        num_samples=int(seconds * 16000),
        duration=seconds,
    )
    sup = SupervisionSegment(
        id=cut_id,
        recording_id=cut_id,
        start=0.0,
        duration=seconds,
        text=text,
        language=lang,
        custom={"translations": {"fra": "bonjour"}, **sup_custom},
    )
    return MonoCut(cut_id, 0.0, seconds, 0, recording=rec, supervisions=[sup], custom={})


def corpus(n_per_text: int = 4) -> list[MonoCut]:
    """``n_per_text`` cuts of every text of ``TEXTS``: ids ``<lang>-<i>``."""
    cuts = []
    for lang, texts in TEXTS.items():
        for i in range(n_per_text * len(texts)):
            cuts.append(text_cut(f"{lang}-{i:03d}", lang, texts[i % len(texts)]))
    return cuts
