"""Text descriptions of separation targets, in two disjoint pools of phrasings.

A text query names what to extract in words ("the beeping", "someone talking over music"), as
in weakly supervised bi-modal separation. Training draws from ``TRAIN`` phrasings; evaluation
uses ``HELDOUT`` phrasings, none of which occurs in training, so the text figures measure how the
sentence encoder generalises rather than memorised strings.

Speech phrasings may mention the background (``{bg}`` is filled with a word for it from
``BACKGROUND_WORDS``); background phrasings describe the background alone.

    describe("speech", "music", rng)              # e.g. "a person talking over music"
    describe("beeps", "beeps", rng, heldout=True) # e.g. "those electronic tones"
"""

from __future__ import annotations

import random

__all__ = ["BACKGROUND_WORDS", "HELDOUT", "TRAIN", "describe"]

BACKGROUND_WORDS = {
    "noise": ["noise", "static", "hiss"],
    "babble": ["a crowd", "chatter", "background voices"],
    "beeps": ["beeping", "beeps", "tones"],
    "music": ["music", "a song", "chords"],
    "speaker": ["another voice", "a second talker"],
}

TRAIN = {
    "speech": [
        "a person talking over {bg}",
        "the speech",
        "someone speaking with {bg} behind",
        "the voice of the speaker",
        "a man or woman reading a sentence",
        "spoken words over {bg}",
    ],
    "noise": ["the noise", "hissing static", "a steady rushing sound", "broadband noise"],
    "babble": ["the crowd chatter", "many people murmuring", "babble of voices", "a noisy room"],
    "beeps": ["the beeping", "short electronic beeps", "a tone beeping", "beep sounds"],
    "music": ["the music", "chords playing", "a melody on an instrument", "musical tones"],
}

HELDOUT = {
    "speech": [
        "the talker's words",
        "a voice saying something despite the {bg}",
        "what the speaker says",
    ],
    "noise": ["that hiss in the background", "the static sound"],
    "babble": ["people chattering in the distance", "the murmur of a crowd"],
    "beeps": ["those electronic tones", "the beeper going off"],
    "music": ["the song playing behind", "instrumental music"],
}


def describe(target: str, background: str, rng: random.Random, heldout: bool = False) -> str:
    """A phrasing for ``target`` (``speech`` or a background class) in a mixture whose
    interference is ``background`` (a class or ``speaker``)."""
    pool = (HELDOUT if heldout else TRAIN).get(target)
    if pool is None:
        raise ValueError(f"no descriptions for {target!r}; known: {sorted(TRAIN)}")
    text = rng.choice(pool)
    if "{bg}" in text:
        text = text.format(bg=rng.choice(BACKGROUND_WORDS.get(background, ["sounds"])))
    return text
