#!/usr/bin/env bash
# Multi-speaker, multilingual TTS on the phrasebook corpus (issue 18): phonemes and clean-enough
# cuts, a FastSpeech 2 acoustic model with a jointly learned aligner (no teacher), a vocoder,
# synthesis of held-out and test texts, and scoring (whisper-tiny.en WER, MCD, F0) -> RESULTS.md.
#   ./run.sh                                            # CPU-sized default (RESULTS.md)
#   ./run.sh --stage 2 --corpus ../s2t1/data/phrasebook # reuse the corpus s2t1 generated
#   ./run.sh --am_config ../../../conf/tts/phrasebook_fs2_gpu.yaml --hours 20 --exp exp/gpu
# Stages: 1 corpus (four languages, every voice incl. Piper), 2 phonemes, cut selection and the
#         vocabulary (speechkit.bin.prepare_tts), 3 acoustic model training (durations from the
#         aligner, pitch/energy targets computed from the audio on the fly), 4 vocoder training
#         (speechkit/tasks/vocoder.py), 5 synthesis of held-out training cuts and of the test
#         texts (speechkit.bin.tts_synthesize), 6 scoring and the mel/pitch picture
#         (speechkit.bin.tts_score, speechkit.bin.tts_plot).
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=6
hours=2.0           # hours of audio in the generated corpus (as s2t1)
nj=2
piper=auto          # the Piper English voice: auto (when installed), on, off
seed=0
corpus=data/phrasebook
data=data/tts
exp=exp
am_config=../../../conf/tts/phrasebook_fs2_cpu.yaml
vocoder_config=../../../conf/tts/vocoder_cpu.yaml
events="clean"      # cuts kept whatever their SNR; others need --min_snr_db
min_snr_db=25
valid=100           # training cuts held out for validation and the same-voice scores
limit=40            # cuts per language in each synthesis set
whisper=whisper-tiny.en   # "" = no Whisper scoring (MCD and F0 only)
png=mels.png
am_args=""          # extra --set overrides for the acoustic model, e.g. "--set trainer.max_steps=50"
vocoder_args=""     # ... for the vocoder

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }
am=$exp/fs2

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: generate the phrasebook corpus ($hours h, Piper voice included) in $corpus"
  python -m speechkit.bin.prepare_phrasebook --out $corpus --hours $hours --seed $seed --num-jobs $nj \
    --language-weights eng=3 --piper $piper
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: phonemes, cut selection (events: $events, else SNR >= $min_snr_db dB), vocabulary -> $data"
  python -m speechkit.bin.prepare_tts --train $corpus/cuts_train.jsonl.gz \
    --test $corpus/cuts_test_seen.jsonl.gz $corpus/cuts_test_novel.jsonl.gz \
    --out $data --events $events --min-snr-db $min_snr_db --valid $valid --seed $seed
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "stage 3: train the acoustic model $am"
  python -m speechkit.bin.train --config $am_config --tokenizer $data \
    --train-cuts $data/cuts_train.jsonl.gz --dev-cuts $data/cuts_valid.jsonl.gz --out $am --resume \
    $am_args
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  # The APNet/Vocos-style vocoder on the same log-mel format (speechkit/tts/mel.py). After a CPU
  # half-hour it is still worse than Griffin-Lim (RESULTS.md), so stage 5 uses Griffin-Lim.
  log "stage 4: train the vocoder $exp/vocoder"
  python -m speechkit.bin.train --config $vocoder_config --train-cuts $corpus/cuts_train.jsonl.gz \
    --dev-cuts $corpus/cuts_dev.jsonl.gz --out $exp/vocoder --resume $vocoder_args
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: synthesise held-out training cuts (same voices) and the test texts (seen voices)"
  python -m speechkit.bin.tts_synthesize --model $am/model_avg.pt \
    --cuts $data/cuts_valid.jsonl.gz --out $am/synth_valid
  python -m speechkit.bin.tts_synthesize --model $am/model_avg.pt \
    --cuts $data/cuts_test.jsonl.gz --out $am/synth_test --limit $limit
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: scores ($whisper WER, MCD, F0) and the picture $png"
  python -m speechkit.bin.tts_score --synth $am/synth_valid --whisper "$whisper"
  python -m speechkit.bin.tts_score --synth $am/synth_test --whisper "$whisper" ${whisper:+--engines}
  python -m speechkit.bin.tts_plot --synth $am/synth_valid --out $png
fi
