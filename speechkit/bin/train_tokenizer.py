"""Train the sentencepiece tokenizer on the transcripts and translations of cut manifests.

    python -m speechkit.bin.train_tokenizer --cuts data/cuts_train.jsonl.gz [--cuts more.jsonl.gz] \
        --config conf/train_tiny.yaml --out data/tokenizer

Only the ``tokenizer:`` section of the experiment YAML is read (a missing section means defaults).
Languages are those spoken in the cuts plus the translation targets; tasks are ``asr`` and
``st_<lang>`` for every language seen. Idempotent: when ``OUT/tokenizer.model`` exists and is newer
than every input, nothing is done.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml
from lhotse import CutSet
from tqdm import tqdm

from speechkit.config import ConfigError, from_dict
from speechkit.text.sentencepiece import MODEL_FILE, SentencePieceTokenizer, TokenizerConfig

logger = logging.getLogger("speechkit.train_tokenizer")


def load_tokenizer_config(path: str | Path) -> TokenizerConfig:
    """The ``tokenizer:`` section of an experiment YAML as a TokenizerConfig."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    section = data.get("tokenizer") or {}
    return from_dict(TokenizerConfig, section, source=f"{path} (tokenizer)")


def collect_texts(cut_paths: list[Path]) -> tuple[list[str], list[str]]:
    """All transcripts and translations, and the sorted languages seen (spoken or translated)."""
    texts: list[str] = []
    languages: set[str] = set()
    for path in cut_paths:
        for cut in tqdm(CutSet.from_file(path), desc=f"reading {path.name}", unit="cut"):
            for sup in cut.supervisions:
                if sup.text and sup.text.strip():
                    texts.append(sup.text.strip())
                if sup.language:
                    languages.add(sup.language)
                for lang, text in ((sup.custom or {}).get("translations") or {}).items():
                    languages.add(lang)
                    if text and text.strip():
                        texts.append(text.strip())
    return texts, sorted(languages)


def is_up_to_date(out_dir: Path, inputs: list[Path]) -> bool:
    model = out_dir / MODEL_FILE
    if not model.is_file():
        return False
    newest_input = max(p.stat().st_mtime for p in inputs)
    return model.stat().st_mtime > newest_input


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuts", type=Path, action="append", required=True, help="cut manifest")
    parser.add_argument("--config", type=Path, required=True, help="experiment YAML")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    for path in [*args.cuts, args.config]:
        if not path.is_file():
            parser.error(f"no such file: {path}")
    cfg = load_tokenizer_config(args.config)
    if is_up_to_date(args.out, [*args.cuts, args.config]):
        logger.info("%s is newer than its inputs; skipping", args.out / MODEL_FILE)
        return 0
    texts, languages = collect_texts(args.cuts)
    if not texts:
        logger.error("no transcripts or translations found in %s", [str(p) for p in args.cuts])
        return 1
    tasks = ["asr"] + [f"st_{lang}" for lang in languages]
    logger.info("%d texts, languages %s, tasks %s", len(texts), languages, tasks)
    tok = SentencePieceTokenizer.train(texts, args.out, cfg, languages=languages, tasks=tasks)
    logger.info("wrote %s (vocab_size %d)", args.out, tok.vocab_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
