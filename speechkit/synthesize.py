"""Text-to-speech API: text -> phonemes -> acoustic model (log-mel) -> vocoder -> wave.

    from speechkit.synthesize import load_tts
    tts = load_tts("exp/tts", "exp/vocoder")        # acoustic model dir, vocoder dir (or .pt)
    wave, sr = tts.synthesize("Where is the museum?", speaker="eng-m3-p55-s160", language="eng")
    tts.speakers, tts.languages                     # what the model knows
    summary = synthesize_corpus(tts, items_from_text_file("lines.txt", "eng-m3-p55-s160", "eng"),
                                "data/synth", "novel")   # a lhotse corpus (below)

Input rules (a :class:`SynthesisError`, a ``ValueError``, that says why; never a half-done wave):

* empty text, or text without letters or digits; characters the phonemiser rejects (outside the
  Latin script, emoji...): every chunk is phonemised before any is synthesised;
* a speaker or language the acoustic model does not know (the message lists the known ones);
* phonemes the model never saw (``speechkit.tts.text.PhonemeVocab``), raised by the acoustic
  model when it reaches that chunk.

Long text is cut into sentences, and long sentences at commas and then between words
(``speechkit.tts.text.split_sentences``, ``max_chars``); each chunk is synthesised alone (memory
and time stay proportional to one chunk) and the chunks are joined with ``pause_seconds`` of
silence, so a text of thousands of words synthesises like a paragraph.

**The acoustic model** is anything with the :class:`TextToMel` interface, the one of
``speechkit.tts.acoustic.AcousticModel`` (FastSpeech 2, the ``tts`` task): ``speakers``,
``languages``, ``mel`` (a ``speechkit.tts.mel.TTSMelConfig``) and ``model(text, speaker,
language).mel`` -> (n_mels, T) log-mel. :func:`load_acoustic` loads that one from a training
directory (its ``model_avg.pt``) or checkpoint; a user's own model with those members works the
same through ``TTS(acoustic, vocoder)``. The acoustic model and the vocoder must agree on the mel
format (rate, hop, bands): checked when they are put together.

**The vocoder** (``speechkit.models.vocoder``) loads from a training directory (its
``model_avg.pt``), a checkpoint ``.pt`` of the ``vocoder`` task, or a packed directory
(:func:`pack_vocoder`)::

    config.yaml   {model_type: vocoder, model: VocoderConfig, mel: TTSMelConfig}
    model.pt      the generator's state_dict (float32; no discriminator)
    meta.json     {speechkit_version, source, sha256: {file: hex}}

or is the decoder of a speechkit codec (:class:`CodecVocoder`: ``--vocoder`` names a packed codec,
a codec training directory or checkpoint) for an acoustic model trained on that codec's codes
(the ``tts`` task's ``codec.model``): the model's predicted latent is quantised into codes by the
codec's residual quantiser (``codes()`` gives them) and the codec decodes them; another codec, or
a model trained on mels only, is refused. Or it
is :class:`GriffinLimVocoder` (``load_tts(model, "griffin-lim")``, ``--vocoder griffin-lim``):
no weights, the acoustic model's own mel format inverted by Griffin-Lim: synthesis before any
vocoder is trained. On the phrasebook a vocoder trained for a CPU half-hour is already the more
intelligible and 8x faster choice on the acoustic model's mels (egs/phrasebook/tts1/RESULTS.md).

**A corpus** (:func:`synthesize_corpus`): items (id, text, speaker, language, and the
supervision's ``custom`` fields such as ``translations``, so that S2T can train on the
synthesis for ASR and ST alike) are synthesised one by one with a progress bar into ``OUT/wavs/<id>.wav`` (16-bit PCM) and the lhotse manifests
``OUT/{recordings,supervisions,cuts}_<name>.jsonl.gz``; an item that fails (bad text, unknown
speaker, a model error) is skipped, logged, counted, and listed in ``OUT/failed_<name>.jsonl``
with its reason. The summary dict counts both.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import soundfile as sf
import torch
import yaml
from torch import Tensor
from tqdm import tqdm

import speechkit
from speechkit.checkpoint import atomic_write, atomic_write_text, load_checkpoint
from speechkit.config import from_dict, to_dict
from speechkit.integrity import sha256_file
from speechkit.models.vocoder import Vocoder, VocoderConfig
from speechkit.pretrained import CONFIG_FILE, META_FILE, MODEL_FILE, PackedModelError, _verify
from speechkit.tts.mel import TTSMelConfig, griffin_lim
from speechkit.tts.text import TextError, phonemize, split_sentences

__all__ = [
    "GRIFFIN_LIM",
    "TTS",
    "CodecVocoder",
    "GriffinLimVocoder",
    "Item",
    "SynthesisError",
    "TextToMel",
    "items_from_cuts",
    "items_from_text_file",
    "load_acoustic",
    "load_tts",
    "load_vocoder",
    "pack_vocoder",
    "synthesize_corpus",
    "voices_by_language",
]

logger = logging.getLogger(__name__)

VOCODER_TYPE = "vocoder"
VOCODER_FILES = (CONFIG_FILE, MODEL_FILE)
_GENERATOR = "generator."  # prefix of the vocoder's weights in a vocoder-task checkpoint
_AVERAGED = "model_avg.pt"  # what a training directory's final model is called
GRIFFIN_LIM = "griffin-lim"  # the vocoder name that means no trained vocoder


class SynthesisError(ValueError):
    """Input the synthesiser cannot say (unknown speaker or language, bad text); says why."""


@runtime_checkable
class TextToMel(Protocol):
    """What synthesis needs of an acoustic model (module docstring); ``__call__`` returns an
    object whose ``mel`` is the (n_mels, T) log-mel of ``text``, in the ``mel`` format."""

    speakers: Sequence[str]
    languages: Sequence[str]
    mel: TTSMelConfig

    def __call__(self, text: str, speaker: str, language: str): ...


# ---- the vocoder: load and pack -------------------------------------------------------


@dataclass(frozen=True)
class _VocoderFormat:
    """What ``TTS`` checks of a vocoder's mel format (the fields of ``VocoderConfig``)."""

    sample_rate: int
    hop: int
    n_mels: int


class GriffinLimVocoder(torch.nn.Module):
    """Griffin-Lim (``speechkit.tts.mel.griffin_lim``) behind the vocoder interface: ``cfg``,
    ``vocode``; no weights. ``mel``: the acoustic model's mel format, which it inverts."""

    def __init__(self, mel: TTSMelConfig, n_iter: int = 32):
        super().__init__()
        if n_iter < 1:
            raise ValueError(f"Griffin-Lim needs at least 1 iteration, got {n_iter}")
        self.mel, self.n_iter = mel, n_iter
        self.cfg = _VocoderFormat(mel.sample_rate, mel.hop_length, mel.n_mels)
        self.register_buffer("anchor", torch.zeros(0), persistent=False)  # carries the device

    def vocode(self, mel: Tensor) -> Tensor:
        """(n_mels, T) or (B, n_mels, T) log-mel -> ((T - 1) * hop,) or (B, (T - 1) * hop)."""
        single = mel.dim() == 2
        wave = griffin_lim(mel[None] if single else mel, self.mel, self.n_iter)
        return wave[0] if single else wave


def _vocoder_from_checkpoint(ckpt: dict, path: Path) -> tuple[Vocoder, TTSMelConfig]:
    config = ckpt.get("config") or {}
    if config.get("task") != VOCODER_TYPE:
        raise PackedModelError(
            f"{path}: not a vocoder training checkpoint (task {config.get('task')!r})"
        )
    cfg = from_dict(VocoderConfig, config["model"], source=f"{path}:config.model")
    mel = TTSMelConfig(**config["mel"])
    state = {k[len(_GENERATOR) :]: v for k, v in ckpt["model"].items() if k.startswith(_GENERATOR)}
    model = Vocoder(cfg)
    model.load_state_dict(state)
    return model, mel


def _vocoder_from_packed(directory: Path, config: dict) -> tuple[Vocoder, TTSMelConfig]:
    _verify(directory, VOCODER_FILES)
    if config.get("model_type") != VOCODER_TYPE:
        raise PackedModelError(f"{directory}: not a packed vocoder ({config.get('model_type')!r})")
    model = Vocoder(from_dict(VocoderConfig, config["model"], source=str(directory)))
    state = torch.load(directory / MODEL_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model, TTSMelConfig(**config["mel"])


class CodecVocoder(torch.nn.Module):
    """A speechkit codec's decoder behind the vocoder interface (``cfg``, ``vocode``), for an
    acoustic model that predicts the codec's latent (module docstring). ``input = "latent"``
    tells :class:`TTS` to hand it the latent, not the mel. ``n_q``: codebooks the latent is
    quantised to (None: the acoustic model's, which :class:`TTS` sets, else all); ``quantize=False``
    decodes the predicted latent as it is, without snapping it to codes."""

    input = "latent"

    def __init__(self, codec, n_q: int | None = None, quantize: bool = True):
        super().__init__()
        from speechkit.tasks.tts import codebook_fingerprint

        self.codec, self.quantize = codec, quantize
        self.n_q = None if n_q is None else codec.n_quantizers(n_q=n_q)
        c = codec.cfg
        self.cfg = _VocoderFormat(c.sample_rate, c.hop, c.rvq.dim)
        self.fingerprint = codebook_fingerprint(codec.model.quantizer)
        self.register_buffer("anchor", torch.zeros(0), persistent=False)

    def codes(self, latent: Tensor) -> Tensor:
        """(D, T) or (B, D, T) latent -> (B, n_q, T) int64 codes."""
        z = latent[None] if latent.dim() == 2 else latent
        return self.codec.model.quantizer.encode(z.float().to(self.codec.device), self.n_q)

    @torch.no_grad()
    def vocode(self, latent: Tensor) -> Tensor:
        """(D, T) or (B, D, T) latent -> (T * hop,) or (B, T * hop) wave."""
        single = latent.dim() == 2
        if self.quantize:
            wave = self.codec.decode(self.codes(latent))
        else:
            z = (latent[None] if single else latent).float().to(self.codec.device)
            wave = self.codec.model.decoder(z).cpu()
        return wave[0] if single else wave


def load_vocoder(path: str | Path, device: str = "cpu") -> tuple[Vocoder, TTSMelConfig]:
    """A vocoder (eval mode, on ``device``) and its mel format, from a packed directory, a
    training directory (its ``model_avg.pt``) or a ``vocoder`` task checkpoint; for a codec
    (packed, training directory or checkpoint), a :class:`CodecVocoder` and None."""
    from speechkit import codec as codec_api

    path = Path(path)
    if path.is_dir() and (path / CONFIG_FILE).is_file() and (path / META_FILE).is_file():
        config = yaml.safe_load((path / CONFIG_FILE).read_text()) or {}
        if config.get("model_type") == codec_api.MODEL_TYPE:
            return CodecVocoder(codec_api.load(path, device)).eval(), None
        model, mel = _vocoder_from_packed(path, config)
    elif path.is_dir() and (path / _AVERAGED).is_file() or path.is_file():
        source = path / _AVERAGED if path.is_dir() else path
        ckpt = load_checkpoint(source)
        if (ckpt.get("config") or {}).get("task") == codec_api.MODEL_TYPE:
            codec = codec_api.CodecModel(
                codec_api.from_checkpoint_dict(ckpt, source), device=device
            )
            return CodecVocoder(codec).eval(), None
        model, mel = _vocoder_from_checkpoint(ckpt, source)
    else:
        raise FileNotFoundError(
            f"no vocoder at {path}: expected a packed directory (config.yaml, model.pt, "
            f"meta.json), a training directory with {_AVERAGED}, or a checkpoint .pt"
        )
    return model.to(device).eval(), mel


def pack_vocoder(source: str | Path, out_dir: str | Path) -> Path:
    """Packs a vocoder checkpoint or training directory into ``out_dir`` (module docstring)."""
    model, mel = load_vocoder(source)
    if isinstance(model, CodecVocoder):
        raise ValueError(f"{source} is a codec: pack it with `speechkit codec pack`")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)
    config = {"model_type": VOCODER_TYPE, "model": to_dict(model.cfg), "mel": asdict(mel)}
    atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    state = {k: v.detach().cpu().float() for k, v in model.state_dict().items()}
    atomic_write(out / MODEL_FILE, lambda f: torch.save(state, f))
    meta = {
        "speechkit_version": speechkit.__version__,
        "source": str(source),
        "sha256": {name: sha256_file(out / name) for name in VOCODER_FILES},
    }
    atomic_write_text(out / META_FILE, json.dumps(meta, indent=2) + "\n")
    return out


# ---- the acoustic model ---------------------------------------------------------------


def load_acoustic(path: str | Path, device: str = "cpu") -> TextToMel:
    """The FastSpeech 2 acoustic model (``speechkit.tts.acoustic.AcousticModel``) of a ``tts``
    training directory (its ``model_avg.pt``) or checkpoint."""
    from speechkit.tts.acoustic import AcousticModel

    path = Path(path)
    ckpt = path / _AVERAGED if path.is_dir() else path
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"no acoustic model at {path}: expected a tts training directory with {_AVERAGED} "
            "or a tts checkpoint .pt"
        )
    return AcousticModel.load(ckpt, device)


# ---- synthesis -----------------------------------------------------------------------


class TTS:
    """An acoustic model and a vocoder put together (module docstring).

    ``vocoder_mel``: the mel format the vocoder was trained on (a warning if it differs from
    the acoustic model's in more than rate, hop and bands, which must agree); ``max_chars``:
    longest chunk synthesised in one pass; ``pause_seconds``: silence between chunks. The
    vocoder runs on the device its weights are on."""

    def __init__(
        self,
        acoustic: TextToMel,
        vocoder: Vocoder,
        vocoder_mel: TTSMelConfig | None = None,
        max_chars: int = 200,
        pause_seconds: float = 0.15,
    ):
        if not isinstance(acoustic, TextToMel):
            raise TypeError(
                f"{type(acoustic).__name__} is not an acoustic model (needs speakers, languages, "
                "mel and a __call__(text, speaker, language) giving .mel)"
            )
        a, v = acoustic.mel, vocoder.cfg
        self.features = getattr(vocoder, "input", "mel")
        if self.features == "latent":
            _check_codec_pair(acoustic, vocoder)
        elif (a.sample_rate, a.hop_length, a.n_mels) != (v.sample_rate, v.hop, v.n_mels):
            raise ValueError(
                f"acoustic model and vocoder disagree on the mel format: acoustic (rate, hop, "
                f"bands) {(a.sample_rate, a.hop_length, a.n_mels)}, vocoder "
                f"{(v.sample_rate, v.hop, v.n_mels)}"
            )
        if vocoder_mel is not None and vocoder_mel != a:
            logger.warning("vocoder trained on mel %s; acoustic model predicts %s", vocoder_mel, a)
        self.acoustic, self.vocoder = acoustic, vocoder.eval()
        self.max_chars, self.pause_seconds = max_chars, pause_seconds

    @property
    def sample_rate(self) -> int:
        return self.vocoder.cfg.sample_rate

    @property
    def speakers(self) -> list[str]:
        return list(self.acoustic.speakers)

    @property
    def languages(self) -> list[str]:
        return list(self.acoustic.languages)

    def check(self, text: str, speaker: str, language: str) -> list[str]:
        """The chunks ``text`` will be said in, each phonemised once, or a
        :class:`SynthesisError` (nothing synthesised)."""
        if language not in self.acoustic.languages:
            raise SynthesisError(f"unknown language {language!r}; the model knows {self.languages}")
        if speaker not in self.acoustic.speakers:
            known = self.speakers
            shown = ", ".join(known[:20]) + (
                f", ... ({len(known)} in all)" if len(known) > 20 else ""
            )
            raise SynthesisError(f"unknown speaker {speaker!r}; the model knows {shown}")
        if not isinstance(text, str) or not text.strip():
            raise SynthesisError("empty text: nothing to synthesise")
        chunks = split_sentences(text, self.max_chars)
        try:
            for chunk in chunks or [text]:  # (no chunk: the phonemiser says why)
                phonemize(chunk, language)  # cached: the acoustic model reuses it
        except TextError as e:
            raise SynthesisError(str(e)) from None
        return chunks

    @torch.inference_mode()
    def chunk_mel(self, chunk: str, speaker: str, language: str) -> Tensor:
        """(n_mels, T) log-mel of one chunk; the acoustic model's refusals as SynthesisError."""
        return self._say(chunk, speaker, language).mel

    @torch.inference_mode()
    def chunk_features(self, chunk: str, speaker: str, language: str) -> Tensor:
        """What the vocoder reads for one chunk: the log-mel (n_mels, T), or the codec latent
        (codec_dim, T) for a :class:`CodecVocoder`."""
        return self.vocoder_input(self._say(chunk, speaker, language))

    def vocoder_input(self, synthesis) -> Tensor:
        """The part of the acoustic model's output that this vocoder reads (``.mel`` or
        ``.latent``)."""
        return synthesis.latent if self.features == "latent" else synthesis.mel

    def _say(self, chunk: str, speaker: str, language: str):
        try:
            return self.acoustic(chunk, speaker, language)
        except TextError as e:
            raise SynthesisError(str(e)) from None

    def mel(self, text: str, speaker: str, language: str) -> list[Tensor]:
        """Log-mel (n_mels, T) of each chunk of ``text``."""
        return [self.chunk_mel(c, speaker, language) for c in self.check(text, speaker, language)]

    @torch.inference_mode()
    def vocode(self, mel: Tensor) -> np.ndarray:
        """(n_mels, T) log-mel (or the codec latent: :meth:`vocoder_input`) -> (S,) float32
        wave in [-1, 1]; S = T * hop for the neural vocoder and the codec, (T - 1) * hop for
        Griffin-Lim."""
        device = next(iter([*self.vocoder.parameters(), *self.vocoder.buffers()])).device
        wave = self.vocoder.vocode(mel.float().to(device)).cpu()
        return wave.clamp(-1.0, 1.0).numpy().astype(np.float32)

    def synthesize(self, text: str, speaker: str, language: str) -> tuple[np.ndarray, int]:
        """``text`` said by ``speaker`` in ``language`` -> (wave (S,) float32, sample rate).
        One chunk's mel is in memory at a time."""
        pause = np.zeros(round(self.pause_seconds * self.sample_rate), dtype=np.float32)
        pieces = []
        for i, chunk in enumerate(self.check(text, speaker, language)):
            if i:
                pieces.append(pause)
            pieces.append(self.vocode(self.chunk_features(chunk, speaker, language)))
        return np.concatenate(pieces), self.sample_rate


def _check_codec_pair(acoustic, vocoder: CodecVocoder) -> None:
    """A codec decodes only the latent of a model trained on its own codes; the vocoder
    quantises to the model's codebooks unless it was given its own ``n_q``."""
    codec = getattr(acoustic, "codec", None)
    if not codec:
        raise ValueError(
            "this acoustic model predicts log-mel only; a codec can be its vocoder only when the "
            "model was trained on that codec's codes (tts task, codec.model)"
        )
    if codec.get("sha256") and codec["sha256"] != vocoder.fingerprint:
        raise ValueError(
            f"the acoustic model was trained on the codes of another codec ({codec.get('model')}); "
            "its latent means nothing to this one"
        )
    a, v = acoustic.mel, vocoder.cfg
    if (a.sample_rate, a.hop_length) != (v.sample_rate, v.hop):
        raise ValueError(
            f"acoustic model (rate, hop) {(a.sample_rate, a.hop_length)} and codec "
            f"{(v.sample_rate, v.hop)} disagree"
        )
    if vocoder.n_q is None and codec.get("n_q"):
        vocoder.n_q = min(int(codec["n_q"]), vocoder.codec.num_quantizers)


def load_tts(
    model_dir: str | Path, vocoder_dir: str | Path, device: str = "cpu", max_chars: int = 200
) -> TTS:
    """The acoustic model of ``model_dir`` and the vocoder of ``vocoder_dir`` (or
    ``"griffin-lim"``), ready to synthesise (module docstring)."""
    acoustic = load_acoustic(model_dir, device)
    if str(vocoder_dir) == GRIFFIN_LIM:
        return TTS(acoustic, GriffinLimVocoder(acoustic.mel).to(device), max_chars=max_chars)
    vocoder, mel = load_vocoder(vocoder_dir, device)
    return TTS(acoustic, vocoder, mel, max_chars=max_chars)


# ---- corpora -------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One utterance to synthesise into a corpus: its new id, text, speaker and language."""

    id: str
    text: str
    speaker: str
    language: str
    custom: dict | None = None  # the source supervision's custom fields (translations, ...)


def items_from_text_file(
    path: str | Path, speaker: str, language: str, prefix: str = ""
) -> Iterator[Item]:
    """One item per non-empty line of a UTF-8 text file, ids ``<prefix><file stem>-<line>``."""
    path = Path(path)
    prefix = prefix or f"{path.stem}-"
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            yield Item(f"{prefix}{n:06d}", line.strip(), speaker, language)


def voices_by_language(speakers: Iterable[str]) -> dict[str, list[str]]:
    """Speaker ids grouped by the language code they start with (``eng-m3-p55-s160`` -> eng:
    the naming of the phrasebook's voices and of ``speechkit.bin.prepare_tts``)."""
    out: dict[str, list[str]] = {}
    for s in speakers:
        out.setdefault(s.split("-")[0], []).append(s)
    return out


def items_from_cuts(
    cuts: Iterable,
    speakers: Sequence[str] = (),
    language: str | None = None,
    prefix: str = "tts-",
    voices: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[Item]:
    """One item per supervision (in ``language`` only, when given): its text and language, said
    by its own speaker; with ``speakers``, by those in turn (e.g. the training voices of that
    language, for new sentences said by known voices); with ``voices`` ({language: speakers},
    e.g. :func:`voices_by_language`), by the voices of each item's language in turn (an item
    whose language has none gets no speaker, and fails alone). Ids ``<prefix><supervision id>``.
    ``cuts`` may also be supervisions (text-only manifests: a sentence list with translations)."""
    n = 0
    taken: Counter = Counter()
    for cut in cuts:
        for sup in getattr(cut, "supervisions", [cut]):
            if language is not None and sup.language != language:
                continue
            lang = sup.language or ""
            if voices is not None:
                pool = voices.get(lang) or [""]
                speaker = pool[taken[lang] % len(pool)]
                taken[lang] += 1
            else:
                speaker = speakers[n % len(speakers)] if speakers else sup.speaker or ""
            n += 1
            yield Item(f"{prefix}{sup.id}", sup.text or "", speaker, lang, dict(sup.custom or {}))


def synthesize_corpus(
    tts: TTS, items: Iterable[Item], out_dir: str | Path, name: str = "synth"
) -> dict:
    """Synthesises ``items`` into a lhotse corpus under ``out_dir`` (module docstring); returns
    ``{"synthesised": n, "failed": n, "seconds": s, "reasons": {kind: n}, "cuts": path}``."""
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    out = Path(out_dir)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    recordings, supervisions, failed = [], [], []
    reasons: Counter = Counter()
    seconds = 0.0
    bar = tqdm(items, desc=f"synthesise {name}", unit="utt", dynamic_ncols=True)
    for item in bar:
        try:
            wave, sr = tts.synthesize(item.text, item.speaker, item.language)
        except Exception as e:  # noqa: BLE001 - one bad item must not stop the corpus
            kind = type(e).__name__
            reasons[kind] += 1
            failed.append({"id": item.id, "text": item.text, "error": f"{kind}: {e}"})
            logger.warning("skipped %s: %s: %s", item.id, kind, e)
            bar.set_postfix(failed=len(failed))
            continue
        path = (out / "wavs" / f"{item.id}.wav").resolve()
        sf.write(str(path), wave, sr, subtype="PCM_16")
        rec = Recording.from_file(path, recording_id=item.id)
        recordings.append(rec)
        supervisions.append(
            SupervisionSegment(
                id=item.id,
                recording_id=item.id,
                start=0.0,
                duration=rec.duration,
                channel=0,
                text=item.text,
                language=item.language,
                speaker=item.speaker,
                custom={**(item.custom or {}), "synthetic": "speechkit-tts"},
            )
        )
        seconds += rec.duration
    bar.close()
    rec_set, sup_set = (
        RecordingSet.from_recordings(recordings),
        SupervisionSet.from_segments(supervisions),
    )
    rec_set.to_file(out / f"recordings_{name}.jsonl.gz")
    sup_set.to_file(out / f"supervisions_{name}.jsonl.gz")
    cuts_path = out / f"cuts_{name}.jsonl.gz"
    cuts = []
    for rec, sup in zip(recordings, supervisions):  # cut id = recording id = item id
        cut = rec.to_cut()
        cut.supervisions = [sup]
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(cuts_path)
    with open(out / f"failed_{name}.jsonl", "w", encoding="utf-8") as f:
        for row in failed:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    summary = {
        "synthesised": len(recordings),
        "failed": len(failed),
        "seconds": round(seconds, 2),
        "reasons": dict(reasons),
        "cuts": str(cuts_path),
    }
    logger.info("synthesised %s", summary)
    return summary
