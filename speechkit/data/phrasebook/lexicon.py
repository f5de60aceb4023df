"""The phrasebook's words: places, objects, cities, numbers, hours, days, each in four languages.

Every entry carries what the templates in ``grammar.py`` need to inflect it correctly: the
grammatical gender in German (``m``/``f``/``n``), Spanish and French (``m``/``f``), and for
English the singular and plural. French elision (``l'hôtel``) is derived from the first letter;
the lexicon deliberately holds no aspirated-h words, so every initial ``h`` elides.

Numbers are written as words so that the synthesised speech and the transcript agree.
"""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES = ("eng", "deu", "spa", "fra")

_FRENCH_VOWELS = "aeiouyàâäéèêëîïôöùûüh"


def french_elides(word: str) -> bool:
    """True when a French article or preposition elides before ``word`` (``l'``, ``d'``)."""
    return word[:1].lower() in _FRENCH_VOWELS


@dataclass(frozen=True)
class Place:
    """A place in town. ``opens``: has opening hours; ``visit``: something tourists visit."""

    key: str
    eng: str
    deu: tuple[str, str]  # (gender, noun)
    spa: tuple[str, str]  # (gender, noun)
    fra: tuple[str, str]  # (gender, noun)
    opens: bool = False
    visit: bool = False


@dataclass(frozen=True)
class Thing:
    """Something one orders or buys: (singular, plural) forms, with gender where needed."""

    key: str
    eng: tuple[str, str]
    deu: tuple[str, str, str]  # (gender, singular, plural)
    spa: tuple[str, str, str]
    fra: tuple[str, str, str]


@dataclass(frozen=True)
class Belonging:
    """A personal item that can be lost (singular only)."""

    key: str
    eng: str
    deu: tuple[str, str]
    spa: str  # Spanish "mi" does not inflect, so no gender is needed
    fra: tuple[str, str]


@dataclass(frozen=True)
class Word:
    """A word whose form does not depend on context: a city, a weekday or a fixed phrase."""

    key: str
    eng: str
    deu: str
    spa: str
    fra: str

    def text(self, lang: str) -> str:
        return getattr(self, lang)


PLACES = (
    Place("station", "train station", ("m", "Bahnhof"), ("f", "estación de tren"), ("f", "gare")),
    Place("museum", "museum", ("n", "Museum"), ("m", "museo"), ("m", "musée"), True, True),
    Place("hotel", "hotel", ("n", "Hotel"), ("m", "hotel"), ("m", "hôtel")),
    Place("airport", "airport", ("m", "Flughafen"), ("m", "aeropuerto"), ("m", "aéroport")),
    Place("pharmacy", "pharmacy", ("f", "Apotheke"), ("f", "farmacia"), ("f", "pharmacie"), True),
    Place("bank", "bank", ("f", "Bank"), ("m", "banco"), ("f", "banque"), True),
    Place("beach", "beach", ("m", "Strand"), ("f", "playa"), ("f", "plage"), False, True),
    Place("market", "market", ("m", "Markt"), ("m", "mercado"), ("m", "marché"), True, True),
    Place(
        "restaurant",
        "restaurant",
        ("n", "Restaurant"),
        ("m", "restaurante"),
        ("m", "restaurant"),
        True,
    ),
    Place("church", "church", ("f", "Kirche"), ("f", "iglesia"), ("f", "église"), True, True),
    Place(
        "library", "library", ("f", "Bibliothek"), ("f", "biblioteca"), ("f", "bibliothèque"), True
    ),
    Place("hospital", "hospital", ("n", "Krankenhaus"), ("m", "hospital"), ("m", "hôpital")),
    Place(
        "bus_stop",
        "bus stop",
        ("f", "Bushaltestelle"),
        ("f", "parada de autobús"),
        ("m", "arrêt de bus"),
    ),
    Place(
        "post_office",
        "post office",
        ("f", "Post"),
        ("f", "oficina de correos"),
        ("f", "poste"),
        True,
    ),
    Place("castle", "castle", ("n", "Schloss"), ("m", "castillo"), ("m", "château"), True, True),
    Place("park", "park", ("m", "Park"), ("m", "parque"), ("m", "parc"), False, True),
    Place(
        "supermarket",
        "supermarket",
        ("m", "Supermarkt"),
        ("m", "supermercado"),
        ("m", "supermarché"),
        True,
    ),
    Place("bakery", "bakery", ("f", "Bäckerei"), ("f", "panadería"), ("f", "boulangerie"), True),
    Place(
        "cathedral", "cathedral", ("m", "Dom"), ("f", "catedral"), ("f", "cathédrale"), True, True
    ),
    Place("zoo", "zoo", ("m", "Zoo"), ("m", "zoo"), ("m", "zoo"), True, True),
)

THINGS = (
    Thing(
        "coffee",
        ("coffee", "coffees"),
        ("m", "Kaffee", "Kaffee"),
        ("m", "café", "cafés"),
        ("m", "café", "cafés"),
    ),
    Thing("tea", ("tea", "teas"), ("m", "Tee", "Tees"), ("m", "té", "tés"), ("m", "thé", "thés")),
    Thing(
        "beer",
        ("beer", "beers"),
        ("n", "Bier", "Bier"),
        ("f", "cerveza", "cervezas"),
        ("f", "bière", "bières"),
    ),
    Thing(
        "water",
        ("bottle of water", "bottles of water"),
        ("f", "Flasche Wasser", "Flaschen Wasser"),
        ("f", "botella de agua", "botellas de agua"),
        ("f", "bouteille d'eau", "bouteilles d'eau"),
    ),
    Thing(
        "wine",
        ("glass of wine", "glasses of wine"),
        ("n", "Glas Wein", "Gläser Wein"),
        ("f", "copa de vino", "copas de vino"),
        ("m", "verre de vin", "verres de vin"),
    ),
    Thing(
        "juice",
        ("orange juice", "orange juices"),
        ("m", "Orangensaft", "Orangensäfte"),
        ("m", "zumo de naranja", "zumos de naranja"),
        ("m", "jus d'orange", "jus d'orange"),
    ),
    Thing(
        "ticket",
        ("ticket", "tickets"),
        ("f", "Fahrkarte", "Fahrkarten"),
        ("m", "billete", "billetes"),
        ("m", "billet", "billets"),
    ),
    Thing(
        "sandwich",
        ("sandwich", "sandwiches"),
        ("n", "Sandwich", "Sandwiches"),
        ("m", "bocadillo", "bocadillos"),
        ("m", "sandwich", "sandwichs"),
    ),
    Thing(
        "apple",
        ("apple", "apples"),
        ("m", "Apfel", "Äpfel"),
        ("f", "manzana", "manzanas"),
        ("f", "pomme", "pommes"),
    ),
    Thing(
        "croissant",
        ("croissant", "croissants"),
        ("n", "Croissant", "Croissants"),
        ("m", "cruasán", "cruasanes"),
        ("m", "croissant", "croissants"),
    ),
    Thing(
        "stamp",
        ("stamp", "stamps"),
        ("f", "Briefmarke", "Briefmarken"),
        ("m", "sello", "sellos"),
        ("m", "timbre", "timbres"),
    ),
    Thing(
        "ice_cream",
        ("ice cream", "ice creams"),
        ("n", "Eis", "Eis"),
        ("m", "helado", "helados"),
        ("f", "glace", "glaces"),
    ),
    Thing(
        "pizza",
        ("pizza", "pizzas"),
        ("f", "Pizza", "Pizzas"),
        ("f", "pizza", "pizzas"),
        ("f", "pizza", "pizzas"),
    ),
    Thing(
        "postcard",
        ("postcard", "postcards"),
        ("f", "Postkarte", "Postkarten"),
        ("f", "postal", "postales"),
        ("f", "carte postale", "cartes postales"),
    ),
    Thing(
        "map",
        ("map", "maps"),
        ("m", "Stadtplan", "Stadtpläne"),
        ("m", "mapa", "mapas"),
        ("m", "plan", "plans"),
    ),
)

BELONGINGS = (
    Belonging("passport", "passport", ("m", "Pass"), "pasaporte", ("m", "passeport")),
    Belonging("wallet", "wallet", ("f", "Geldbörse"), "cartera", ("m", "portefeuille")),
    Belonging("key", "key", ("m", "Schlüssel"), "llave", ("f", "clé")),
    Belonging("phone", "phone", ("n", "Handy"), "teléfono", ("m", "téléphone")),
    Belonging("bag", "bag", ("f", "Tasche"), "bolso", ("m", "sac")),
    Belonging("umbrella", "umbrella", ("m", "Regenschirm"), "paraguas", ("m", "parapluie")),
    Belonging("camera", "camera", ("f", "Kamera"), "cámara", ("m", "appareil photo")),
    Belonging("suitcase", "suitcase", ("m", "Koffer"), "maleta", ("f", "valise")),
    Belonging("jacket", "jacket", ("f", "Jacke"), "chaqueta", ("f", "veste")),
)

CITIES = (
    Word("berlin", "Berlin", "Berlin", "Berlín", "Berlin"),
    Word("paris", "Paris", "Paris", "París", "Paris"),
    Word("madrid", "Madrid", "Madrid", "Madrid", "Madrid"),
    Word("london", "London", "London", "Londres", "Londres"),
    Word("munich", "Munich", "München", "Múnich", "Munich"),
    Word("vienna", "Vienna", "Wien", "Viena", "Vienne"),
    Word("rome", "Rome", "Rom", "Roma", "Rome"),
    Word("lisbon", "Lisbon", "Lissabon", "Lisboa", "Lisbonne"),
    Word("brussels", "Brussels", "Brüssel", "Bruselas", "Bruxelles"),
    Word("geneva", "Geneva", "Genf", "Ginebra", "Genève"),
    Word("cologne", "Cologne", "Köln", "Colonia", "Cologne"),
    Word("milan", "Milan", "Mailand", "Milán", "Milan"),
    Word("prague", "Prague", "Prag", "Praga", "Prague"),
    Word("venice", "Venice", "Venedig", "Venecia", "Venise"),
    Word("amsterdam", "Amsterdam", "Amsterdam", "Ámsterdam", "Amsterdam"),
    Word("barcelona", "Barcelona", "Barcelona", "Barcelona", "Barcelone"),
)

DAYS = (
    Word("mon", "Monday", "Montag", "lunes", "lundi"),
    Word("tue", "Tuesday", "Dienstag", "martes", "mardi"),
    Word("wed", "Wednesday", "Mittwoch", "miércoles", "mercredi"),
    Word("thu", "Thursday", "Donnerstag", "jueves", "jeudi"),
    Word("fri", "Friday", "Freitag", "viernes", "vendredi"),
    Word("sat", "Saturday", "Samstag", "sábado", "samedi"),
    Word("sun", "Sunday", "Sonntag", "domingo", "dimanche"),
)

PHRASES = (
    Word("thanks", "Thank you very much.", "Vielen Dank.", "Muchas gracias.", "Merci beaucoup."),
    Word(
        "speak_english",
        "Do you speak English?",
        "Sprechen Sie Englisch?",
        "¿Habla usted inglés?",
        "Parlez-vous anglais ?",
    ),
    Word(
        "not_understand",
        "I do not understand.",
        "Ich verstehe nicht.",
        "No entiendo.",
        "Je ne comprends pas.",
    ),
    Word(
        "help",
        "Can you help me, please?",
        "Können Sie mir bitte helfen?",
        "¿Puede ayudarme, por favor?",
        "Pouvez-vous m'aider, s'il vous plaît ?",
    ),
    Word(
        "bill",
        "The bill, please.",
        "Die Rechnung, bitte.",
        "La cuenta, por favor.",
        "L'addition, s'il vous plaît.",
    ),
    Word(
        "toilets",
        "Where are the toilets?",
        "Wo sind die Toiletten?",
        "¿Dónde están los servicios?",
        "Où sont les toilettes ?",
    ),
    Word(
        "slowly",
        "Please speak more slowly.",
        "Bitte sprechen Sie langsamer.",
        "Hable más despacio, por favor.",
        "Parlez plus lentement, s'il vous plaît.",
    ),
    Word(
        "card",
        "Can I pay by card?",
        "Kann ich mit Karte bezahlen?",
        "¿Puedo pagar con tarjeta?",
        "Puis-je payer par carte ?",
    ),
    Word("morning", "Good morning!", "Guten Morgen!", "¡Buenos días!", "Bonjour !"),
    Word(
        "goodbye",
        "Goodbye and have a nice day.",
        "Auf Wiedersehen und einen schönen Tag.",
        "Adiós y que tenga un buen día.",
        "Au revoir et bonne journée.",
    ),
    Word(
        "what_time",
        "What time is it?",
        "Wie spät ist es?",
        "¿Qué hora es?",
        "Quelle heure est-il ?",
    ),
    Word(
        "doctor",
        "I need a doctor.",
        "Ich brauche einen Arzt.",
        "Necesito un médico.",
        "J'ai besoin d'un médecin.",
    ),
    Word(
        "menu",
        "Could we see the menu, please?",
        "Könnten wir bitte die Speisekarte sehen?",
        "¿Podríamos ver la carta, por favor?",
        "Pourrions-nous voir la carte, s'il vous plaît ?",
    ),
)

# Cardinal numbers 1..20 as words; index 0 is unused. For 1 the German, Spanish and French forms
# depend on gender and context, so ``number_word`` handles it.
_NUMBERS = {
    "eng": "_ one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty",
    "deu": "_ eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn vierzehn "
    "fünfzehn sechzehn siebzehn achtzehn neunzehn zwanzig",
    "spa": "_ uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince "
    "dieciséis diecisiete dieciocho diecinueve veinte",
    "fra": "_ un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze "
    "seize dix-sept dix-huit dix-neuf vingt",
}
NUMBER_WORDS = {lang: words.split() for lang, words in _NUMBERS.items()}


def number_word(lang: str, n: int) -> str:
    """The standalone cardinal ``n`` (1..20) in ``lang``, e.g. ("deu", 1) -> "eins"."""
    if not 1 <= n <= 20:
        raise ValueError(f"phrasebook numbers go from 1 to 20, got {n}")
    return NUMBER_WORDS[lang][n]
