#!/usr/bin/env bash
# LibriMix (Libri2Mix) separation: the query-conditioned separator of egs/phrasebook/enh1 trained
# on two-talker mixtures (target-speaker extraction from an enrollment utterance, or either talker
# for a "speech" query) and, with --mix "clean both", on the same mixtures over WHAM! noise
# (speech extraction), judged by SI-SDR improvement on test-clean. Sized for one GPU.
#   ./run.sh --data_root /path               # /path holds LibriSpeech/, wham_noise/, metadata/
#   ./run.sh --data_root /path --download true          # fetch the three first (lhotse)
#   ./run.sh --mix "clean both" --exp exp/sep_librimix_both
#   ./run.sh --stage 3
# Stages: 1 prepare the mixtures with lhotse's recipe (sources kept), 2 train the separator,
#         3 SI-SDRi on test by query type and SNR band -> RESULTS.md.
# Stages 1-2 skip work that is already done (training resumes from its newest checkpoint); the
# evaluation runs again. The separator is used from $exp (speechkit separate --model $exp).
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=3
data_root=downloads     # holds LibriSpeech/, wham_noise/, metadata/Libri2Mix/
download=false
train_parts=train-clean-360
mix=clean               # "clean both": add the noisy mixtures (speech-extraction cuts)
mode=min                # min: mixtures end with the shorter utterance (the usual benchmark)
nj=4                    # threads for lhotse's recipes
config=../../../conf/separation/librimix_gpu.yaml
data=data/librimix
exp=exp/sep_librimix
train_args=""           # extra --set overrides, e.g. "--set trainer.max_steps=100000"
figures=""              # a directory: one spectrogram per query type
results=RESULTS.md

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: Libri2Mix ($train_parts, dev-clean, test-clean; mix $mix, $mode) in $data"
  python -m speechkit.bin.prepare_librimix --data-root "$data_root" --out $data \
    --train-parts $train_parts --mix $mix --mode $mode --download $download --num-jobs $nj
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: train the separator in $exp"
  python -m speechkit.bin.train --config $config --train-cuts $data/cuts_train.jsonl.gz \
    --dev-cuts $data/cuts_dev.jsonl.gz --out $exp --resume $train_args
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "stage 3: SI-SDRi on test-clean by query type and SNR band -> $results"
  python -m speechkit.bench.separation --model "${exp##*/}=$exp" --cuts $data/cuts_test.jsonl.gz \
    ${figures:+--figures $figures} --results-md $results
fi
log "done"
