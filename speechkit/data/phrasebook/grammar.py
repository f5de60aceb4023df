"""Parallel travel-phrasebook sentences in English, German, Spanish and French.

A ``Template`` has named slots (each a tuple of lexicon entries or numbers) and a ``render``
function that writes the sentence in all four languages at once, so the translations are aligned
by construction. A sentence's id is the template name plus its slot keys, e.g.
``want:2:coffee``; the same id names all four translations.

    sentences = all_sentences()                   # every slot combination, in a fixed order
    split = split_sentences(seed=0)               # {"seen": [...], "novel": [...]}
    get_sentence("where_is:station").texts["deu"] # 'Wo ist der Bahnhof?'

Novel sentences come only from templates with two or more slots, so every word in a novel test
sentence also occurs in training: only the combination is new.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from speechkit.data.phrasebook.lexicon import (
    BELONGINGS,
    CITIES,
    DAYS,
    LANGUAGES,
    PHRASES,
    PLACES,
    THINGS,
    Belonging,
    Place,
    Thing,
    Word,
    french_elides,
    number_word,
)

__all__ = [
    "LANGUAGES",
    "TEMPLATES",
    "Sentence",
    "Template",
    "all_sentences",
    "get_sentence",
    "split_sentences",
]


@dataclass(frozen=True)
class Sentence:
    """One grammar sentence: ``texts`` maps each of ``LANGUAGES`` to its translation."""

    sentence_id: str
    template: str
    texts: dict[str, str]


@dataclass(frozen=True)
class Template:
    """``render(*slot_values) -> {lang: text}``; ``slots`` lists each slot's possible values."""

    name: str
    slots: tuple[tuple, ...]
    render: Callable[..., dict[str, str]]


def _cap(text: str) -> str:
    """Upper-cases the first letter, skipping a leading Spanish ``¿``/``¡``."""
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :]
    return text


def _key(value) -> str:
    return str(value) if isinstance(value, int) else value.key


# ---- articles and contractions ---------------------------------------------------------------
_DEU_DEF = {
    "nom": {"m": "der", "f": "die", "n": "das"},
    "dat": {"m": "dem", "f": "der", "n": "dem"},
}
_DEU_INDEF = {
    "nom": {"m": "ein", "f": "eine", "n": "ein"},
    "acc": {"m": "einen", "f": "eine", "n": "ein"},
}


def deu_def(entry: tuple[str, str], case: str) -> str:
    gender, noun = entry
    return f"{_DEU_DEF[case][gender]} {noun}"


def spa_def(entry: tuple[str, str]) -> str:
    gender, noun = entry
    return f"{'el' if gender == 'm' else 'la'} {noun}"


def fra_def(entry: tuple[str, str]) -> str:
    gender, noun = entry
    if french_elides(noun):
        return f"l'{noun}"
    return f"{'le' if gender == 'm' else 'la'} {noun}"


def spa_with(prep: str, entry: tuple[str, str]) -> str:
    """``a``/``de`` plus the definite article; ``a el`` -> ``al`` and ``de el`` -> ``del``."""
    gender, noun = entry
    if gender == "m":
        return f"{prep}l {noun}"
    return f"{prep} la {noun}"


def fra_with(prep: str, entry: tuple[str, str]) -> str:
    """``à``/``de`` plus the definite article: ``au musée``, ``à la gare``, ``de l'hôtel``."""
    gender, noun = entry
    if french_elides(noun):
        return f"{prep} l'{noun}"
    if gender == "m":
        return f"{'au' if prep == 'à' else 'du'} {noun}"
    return f"{prep} la {noun}"


def eng_indef(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def hour_phrase(lang: str, h: int) -> str:
    """'at nine o'clock' in each language; one o'clock is singular in Spanish and French."""
    if lang == "eng":
        return f"at {number_word('eng', h)} o'clock"
    if lang == "deu":
        return f"um {'ein' if h == 1 else number_word('deu', h)} Uhr"
    if lang == "spa":
        return "a la una" if h == 1 else f"a las {number_word('spa', h)}"
    return "à une heure" if h == 1 else f"à {number_word('fra', h)} heures"


def counted(thing: Thing, n: int, case: str = "acc") -> dict[str, str]:
    """``n`` of ``thing`` in each language ("two coffees", "einen Kaffee", "una cerveza")."""
    out = {}
    eng_noun = thing.eng[0] if n == 1 else thing.eng[1]
    out["eng"] = f"{number_word('eng', n)} {eng_noun}"
    g, sg, pl = thing.deu
    out["deu"] = f"{_DEU_INDEF[case][g]} {sg}" if n == 1 else f"{number_word('deu', n)} {pl}"
    g, sg, pl = thing.spa
    out["spa"] = (
        f"{'un' if g == 'm' else 'una'} {sg}" if n == 1 else f"{number_word('spa', n)} {pl}"
    )
    g, sg, pl = thing.fra
    out["fra"] = (
        f"{'un' if g == 'm' else 'une'} {sg}" if n == 1 else f"{number_word('fra', n)} {pl}"
    )
    return out


def _nums(lang_n: int) -> dict[str, str]:
    return {lang: number_word(lang, lang_n) for lang in LANGUAGES}


# ---- templates -------------------------------------------------------------------------------
def _where_is(p: Place) -> dict[str, str]:
    return {
        "eng": f"Where is the {p.eng}?",
        "deu": f"Wo ist {deu_def(p.deu, 'nom')}?",
        "spa": f"¿Dónde está {spa_def(p.spa)}?",
        "fra": f"Où est {fra_def(p.fra)} ?",
    }


def _how_to_get(p: Place) -> dict[str, str]:
    zu = "zur" if p.deu[0] == "f" else "zum"
    return {
        "eng": f"How do I get to the {p.eng}?",
        "deu": f"Wie komme ich {zu} {p.deu[1]}?",
        "spa": f"¿Cómo llego {spa_with('a', p.spa)}?",
        "fra": f"Comment aller {fra_with('à', p.fra)} ?",
    }


def _is_there_near(p: Place) -> dict[str, str]:
    g_deu, g_spa, g_fra = p.deu[0], p.spa[0], p.fra[0]
    return {
        "eng": f"Is there {eng_indef(p.eng)} near here?",
        "deu": f"Gibt es hier in der Nähe {_DEU_INDEF['acc'][g_deu]} {p.deu[1]}?",
        "spa": f"¿Hay {'un' if g_spa == 'm' else 'una'} {p.spa[1]} cerca de aquí?",
        "fra": f"Y a-t-il {'un' if g_fra == 'm' else 'une'} {p.fra[1]} près d'ici ?",
    }


def _far(p: Place) -> dict[str, str]:
    return {
        "eng": f"Is the {p.eng} far from here?",
        "deu": f"Ist {deu_def(p.deu, 'nom')} weit von hier?",
        "spa": f"¿{_cap(spa_def(p.spa))} está lejos de aquí?",
        "fra": f"Est-ce que {fra_def(p.fra)} est loin d'ici ?",
    }


def _open_today(p: Place) -> dict[str, str]:
    return {
        "eng": f"Is the {p.eng} open today?",
        "deu": f"Ist {deu_def(p.deu, 'nom')} heute geöffnet?",
        "spa": f"¿Está {'abierto' if p.spa[0] == 'm' else 'abierta'} {spa_def(p.spa)} hoy?",
        "fra": f"Est-ce que {fra_def(p.fra)} est {'ouvert' if p.fra[0] == 'm' else 'ouverte'} "
        "aujourd'hui ?",
    }


def _opens_at(p: Place, h: int, verbs=("opens", "öffnet", "abre", "ouvre")) -> dict[str, str]:
    return {
        "eng": f"The {p.eng} {verbs[0]} {hour_phrase('eng', h)}.",
        "deu": f"{_cap(deu_def(p.deu, 'nom'))} {verbs[1]} {hour_phrase('deu', h)}.",
        "spa": f"{_cap(spa_def(p.spa))} {verbs[2]} {hour_phrase('spa', h)}.",
        "fra": f"{_cap(fra_def(p.fra))} {verbs[3]} {hour_phrase('fra', h)}.",
    }


def _closes_at(p: Place, h: int) -> dict[str, str]:
    return _opens_at(p, h, verbs=("closes", "schließt", "cierra", "ferme"))


def _closed_on(p: Place, d: Word) -> dict[str, str]:
    return {
        "eng": f"The {p.eng} is closed on {d.eng}.",
        "deu": f"{_cap(deu_def(p.deu, 'nom'))} ist am {d.deu} geschlossen.",
        "spa": f"{_cap(spa_def(p.spa))} está {'cerrado' if p.spa[0] == 'm' else 'cerrada'} "
        f"el {d.spa}.",
        "fra": f"{_cap(fra_def(p.fra))} est {'fermé' if p.fra[0] == 'm' else 'fermée'} {d.fra}.",
    }


def _visit_on(p: Place, d: Word) -> dict[str, str]:
    das = {"m": "den", "f": "die", "n": "das"}[p.deu[0]]
    return {
        "eng": f"We want to visit the {p.eng} on {d.eng}.",
        "deu": f"Wir wollen am {d.deu} {das} {p.deu[1]} besuchen.",
        "spa": f"Queremos visitar {spa_def(p.spa)} el {d.spa}.",
        "fra": f"Nous voulons visiter {fra_def(p.fra)} {d.fra}.",
    }


def _meet_at(p: Place, h: int) -> dict[str, str]:
    an = "an der" if p.deu[0] == "f" else "am"
    return {
        "eng": f"Let's meet at the {p.eng} {hour_phrase('eng', h)}.",
        "deu": f"Treffen wir uns {hour_phrase('deu', h)} {an} {p.deu[1]}.",
        "spa": f"Nos vemos en {spa_def(p.spa)} {hour_phrase('spa', h)}.",
        "fra": f"Rendez-vous {fra_with('à', p.fra)} {hour_phrase('fra', h)}.",
    }


def _next_to(a: Place, b: Place) -> dict[str, str]:
    return {
        "eng": f"The {a.eng} is next to the {b.eng}.",
        "deu": f"{_cap(deu_def(a.deu, 'nom'))} ist neben {deu_def(b.deu, 'dat')}.",
        "spa": f"{_cap(spa_def(a.spa))} está al lado {spa_with('de', b.spa)}.",
        "fra": f"{_cap(fra_def(a.fra))} est à côté {fra_with('de', b.fra)}.",
    }


def _want(n: int, t: Thing) -> dict[str, str]:
    c = counted(t, n, "acc")
    return {
        "eng": f"I would like {c['eng']}, please.",
        "deu": f"Ich hätte gern {c['deu']}, bitte.",
        "spa": f"Quisiera {c['spa']}, por favor.",
        "fra": f"Je voudrais {c['fra']}, s'il vous plaît.",
    }


def _how_much(n: int, t: Thing) -> dict[str, str]:
    c = counted(t, n, "nom")
    one = n == 1
    return {
        "eng": f"How much {'does' if one else 'do'} {c['eng']} cost?",
        "deu": f"Wie viel {'kostet' if one else 'kosten'} {c['deu']}?",
        "spa": f"¿Cuánto {'cuesta' if one else 'cuestan'} {c['spa']}?",
        "fra": f"Combien {'coûte' if one else 'coûtent'} {c['fra']} ?",
    }


def _buy(t: Thing) -> dict[str, str]:
    c = counted(t, 1, "acc")
    return {
        "eng": f"Where can I buy {eng_indef(t.eng[0])}?",
        "deu": f"Wo kann ich {c['deu']} kaufen?",
        "spa": f"¿Dónde puedo comprar {c['spa']}?",
        "fra": f"Où est-ce que je peux acheter {c['fra']} ?",
    }


def _tickets(n: int, city: Word) -> dict[str, str]:
    c = counted(THINGS_BY_KEY["ticket"], n, "nom")
    return {
        "eng": f"{_cap(c['eng'])} to {city.eng}, please.",
        "deu": f"{_cap(c['deu'])} nach {city.deu}, bitte.",
        "spa": f"{_cap(c['spa'])} para {city.spa}, por favor.",
        "fra": f"{_cap(c['fra'])} pour {city.fra}, s'il vous plaît.",
    }


def _train_leaves(city: Word, h: int) -> dict[str, str]:
    return {
        "eng": f"The train to {city.eng} leaves {hour_phrase('eng', h)}.",
        "deu": f"Der Zug nach {city.deu} fährt {hour_phrase('deu', h)} ab.",
        "spa": f"El tren a {city.spa} sale {hour_phrase('spa', h)}.",
        "fra": f"Le train pour {city.fra} part {hour_phrase('fra', h)}.",
    }


def _degrees(n: int, city: Word) -> dict[str, str]:
    w = _nums(n)
    return {
        "eng": f"It is {w['eng']} degrees in {city.eng} today.",
        "deu": f"Heute sind es {w['deu']} Grad in {city.deu}.",
        "spa": f"Hoy hace {w['spa']} grados en {city.spa}.",
        "fra": f"Il fait {w['fra']} degrés à {city.fra} aujourd'hui.",
    }


def _table_for(n: int) -> dict[str, str]:
    w = _nums(n)
    return {
        "eng": f"A table for {w['eng']}, please.",
        "deu": f"Einen Tisch für {w['deu']}, bitte.",
        "spa": f"Una mesa para {w['spa']}, por favor.",
        "fra": f"Une table pour {w['fra']}, s'il vous plaît.",
    }


def _nights(n: int) -> dict[str, str]:
    w = _nums(n)
    return {
        "eng": f"I have a reservation for {w['eng']} nights.",
        "deu": f"Ich habe eine Reservierung für {w['deu']} Nächte.",
        "spa": f"Tengo una reserva para {w['spa']} noches.",
        "fra": f"J'ai une réservation pour {w['fra']} nuits.",
    }


def _platform(n: int) -> dict[str, str]:
    w = _nums(n)
    return {
        "eng": f"The train leaves from platform {w['eng']}.",
        "deu": f"Der Zug fährt von Gleis {w['deu']} ab.",
        "spa": f"El tren sale del andén número {w['spa']}.",
        "fra": f"Le train part du quai numéro {w['fra']}.",
    }


def _bus_every(n: int) -> dict[str, str]:
    w = _nums(n)
    return {
        "eng": f"The bus comes every {w['eng']} minutes.",
        "deu": f"Der Bus kommt alle {w['deu']} Minuten.",
        "spa": f"El autobús pasa cada {w['spa']} minutos.",
        "fra": f"Le bus passe toutes les {w['fra']} minutes.",
    }


def _lost(b: Belonging) -> dict[str, str]:
    mein = {"m": "meinen", "f": "meine", "n": "mein"}[b.deu[0]]
    g, noun = b.fra
    mon = "mon" if g == "m" or french_elides(noun) else "ma"
    return {
        "eng": f"I have lost my {b.eng}.",
        "deu": f"Ich habe {mein} {b.deu[1]} verloren.",
        "spa": f"He perdido mi {b.spa}.",
        "fra": f"J'ai perdu {mon} {noun}.",
    }


def _phrase(w: Word) -> dict[str, str]:
    return {lang: w.text(lang) for lang in LANGUAGES}


THINGS_BY_KEY = {t.key: t for t in THINGS}
_HOURS = tuple(range(1, 13))
_OPENING = tuple(p for p in PLACES if p.opens)
_SIGHTS = tuple(p for p in PLACES if p.visit)

TEMPLATES = (
    Template("where_is", (PLACES,), _where_is),
    Template("how_to_get", (PLACES,), _how_to_get),
    Template("is_there_near", (PLACES,), _is_there_near),
    Template("far", (PLACES,), _far),
    Template("open_today", (_OPENING,), _open_today),
    Template("opens_at", (_OPENING, _HOURS), _opens_at),
    Template("closes_at", (_OPENING, _HOURS), _closes_at),
    Template("closed_on", (_OPENING, DAYS), _closed_on),
    Template("visit_on", (_SIGHTS, DAYS), _visit_on),
    Template("meet_at", (PLACES, _HOURS), _meet_at),
    Template("next_to", (PLACES, PLACES), _next_to),
    Template("want", (tuple(range(1, 7)), THINGS), _want),
    Template("how_much", (tuple(range(1, 7)), THINGS), _how_much),
    Template("buy", (THINGS,), _buy),
    Template("tickets", (tuple(range(1, 5)), CITIES), _tickets),
    Template("train_leaves", (CITIES, _HOURS), _train_leaves),
    Template("degrees", (tuple(range(2, 21)), CITIES), _degrees),
    Template("table_for", (tuple(range(2, 9)),), _table_for),
    Template("nights", (tuple(range(2, 15)),), _nights),
    Template("platform", (tuple(range(1, 13)),), _platform),
    Template("bus_every", (tuple(range(2, 21)),), _bus_every),
    Template("lost", (BELONGINGS,), _lost),
    Template("phrase", (PHRASES,), _phrase),
)


def _sentences_of(template: Template) -> list[Sentence]:
    out = []
    for values in itertools.product(*template.slots):
        if template.name == "next_to" and values[0] is values[1]:
            continue  # "the bank is next to the bank" says nothing
        sid = ":".join([template.name, *(_key(v) for v in values)])
        out.append(Sentence(sid, template.name, template.render(*values)))
    return out


@lru_cache(maxsize=1)
def _all() -> tuple[Sentence, ...]:
    return tuple(s for t in TEMPLATES for s in _sentences_of(t))


def all_sentences() -> list[Sentence]:
    """Every sentence of the grammar, in a fixed order (template order, then slot order)."""
    return list(_all())


@lru_cache(maxsize=1)
def _by_id() -> dict[str, Sentence]:
    return {s.sentence_id: s for s in _all()}


def get_sentence(sentence_id: str) -> Sentence:
    """The sentence with this id; ``KeyError`` naming the id if the grammar has none."""
    try:
        return _by_id()[sentence_id]
    except KeyError:
        raise KeyError(f"no phrasebook sentence with id {sentence_id!r}") from None


def _unit_hash(text: str) -> float:
    """A stable number in [0, 1) from ``text`` (Python's ``hash`` is salted per process)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_sentences(seed: int = 0, novel_fraction: float = 0.1) -> dict[str, list[Sentence]]:
    """Splits the grammar into ``seen`` (may be used for training) and ``novel`` (never).

    A sentence is novel when a seeded hash of its id falls below ``novel_fraction``; only
    templates with at least two slots contribute novel sentences, so their words are all seen.
    """
    if not 0.0 <= novel_fraction < 1.0:
        raise ValueError(f"novel_fraction must be in [0, 1), got {novel_fraction}")
    multi_slot = {t.name for t in TEMPLATES if len(t.slots) >= 2}
    split: dict[str, list[Sentence]] = {"seen": [], "novel": []}
    for s in _all():
        novel = s.template in multi_slot and _unit_hash(f"{seed}/{s.sentence_id}") < novel_fraction
        split["novel" if novel else "seen"].append(s)
    return split
