#!/usr/bin/env bash
# LJSpeech text-to-speech: DATA PREPARATION ONLY, for now.
#   ./run.sh --data_root /path              # /path holds LJSpeech-1.1/ (or is it)
#   ./run.sh --data_root /path --download true        # fetch LJSpeech-1.1 first
# Stage 1 prepares the corpus with lhotse's recipe: data/ljspeech/cuts_{train,dev,test}.jsonl.gz
# (the last 250 clips are the test set, the 250 before them the dev set; normalised text).
# The TTS model stages (train, synthesise the test sentences, judge them by a recogniser's WER)
# come with the TTS issue: speechkit has no TTS task yet, so this recipe stops after stage 1.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=1
data_root=downloads     # holds LJSpeech-1.1/; --download true extracts it here
download=false
data=data/ljspeech
dev_size=250
test_size=250

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: prepare LJSpeech in $data"
  python -m speechkit.bin.prepare_ljspeech --data-root "$data_root" --out $data \
    --dev-size $dev_size --test-size $test_size --download $download
fi

if [ $stop_stage -ge 2 ]; then
  log "stages 2 and later (TTS training, synthesis, ASR-judged WER) come with the TTS issue"
  exit 1
fi
log "done"
