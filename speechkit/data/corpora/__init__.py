"""Public corpora, prepared by lhotse's own recipes and normalised to speechkit's cut conventions.

lhotse downloads and parses each corpus (``lhotse.recipes.download_*`` / ``prepare_*``); a module
here checks the corpus on disk first (a missing or partial directory is a :class:`CorpusError`
naming what is missing), calls lhotse, then brings the cuts to the conventions of
docs/design.md (ISO 639-3 ``language``, one supervision per cut, ids the scorer can show) and
writes the manifests a recipe reads (``cuts_<split>.jsonl.gz``).

* ``librispeech``: LibriSpeech ASR (``egs/librispeech/s2t1``);
* ``must_c``: MuST-C English-to-X speech translation and English ASR (``egs/must_c/s2t1``);
* ``librimix``: Libri2Mix separation, LibriSpeech talkers over WHAM! noise (``egs/librimix/enh1``);
* ``ljspeech``: LJSpeech TTS (``egs/ljspeech/tts1``).
"""

from speechkit.data.corpora.common import CorpusError

__all__ = ["CorpusError"]
