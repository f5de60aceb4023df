#!/usr/bin/env bash
# LJSpeech text-to-speech (one English speaker, 24 h at 22.05 kHz), sized for one GPU: a
# FastSpeech 2 acoustic model with a jointly learned aligner, Griffin-Lim (or a trained vocoder),
# the 250 test sentences synthesised and judged by whisper-tiny.en's WER beside the recordings'.
#   ./run.sh --data_root /path                    # /path holds LJSpeech-1.1/ (or is it)
#   ./run.sh --data_root /path --download true    # fetch LJSpeech-1.1 first
#   ./run.sh --data_root /path --vocoder exp/vocoder   # also train the vocoder, synthesise with it
# Stages: 1 corpus with lhotse's recipe (last 250 clips test, 250 before them dev), 2 phonemes
#         and the vocabulary (speechkit.bin.prepare_tts), 3 acoustic model, 4 vocoder (only with
#         --vocoder DIR), 5 synthesis of the test sentences, 6 scores (WER, MCD, F0) -> RESULTS.md.
# Synthesis, scoring and the picture are the package's entry points speechkit.bin.tts_synthesize,
# tts_score and tts_plot, as in egs/phrasebook/tts1. The audio stays at 22.05 kHz: every reader
# resamples to the config's rate.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=6
data_root=downloads     # holds LJSpeech-1.1/; --download true extracts it here
download=false
data=data/ljspeech      # the corpus's cut manifests (stage 1)
tts_data=data/tts       # phonemised cuts and vocab.json (stage 2)
dev_size=250
test_size=250
exp=exp
am_config=../../../conf/tts/ljspeech_fs2_gpu.yaml
vocoder=""              # a vocoder directory: stage 4 trains it, stage 5 synthesises with it;
                        # "" = Griffin-Lim and no stage 4 (README.md: why, for now)
vocoder_config=../../../conf/tts/ljspeech_vocoder_gpu.yaml
limit=0                 # test sentences to synthesise (0: all)
whisper=whisper-tiny.en # the judge (zoo name or packed directory); "" = MCD and F0 only
results=RESULTS.md
png=mels.png
am_args=""              # extra --set overrides for the acoustic model, e.g. "--set trainer.max_steps=50"
vocoder_args=""         # ... for the vocoder

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }
am=$exp/fs2
repro="cd egs/ljspeech/tts1 && ./run.sh --data_root <LJSpeech> --dev_size $dev_size --test_size $test_size --am_config $am_config --exp $exp --limit $limit --whisper '$whisper'${vocoder:+ --vocoder $vocoder}${am_args:+ --am_args '$am_args'}${vocoder_args:+ --vocoder_args '$vocoder_args'}"

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: prepare LJSpeech in $data"
  python -m speechkit.bin.prepare_ljspeech --data-root "$data_root" --out $data \
    --dev-size $dev_size --test-size $test_size --download $download
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: phonemes and the vocabulary -> $tts_data (validation: the dev split)"
  python -m speechkit.bin.prepare_tts --train $data/cuts_train.jsonl.gz \
    --dev $data/cuts_dev.jsonl.gz --test $data/cuts_test.jsonl.gz --out $tts_data
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "stage 3: train the acoustic model $am"
  python -m speechkit.bin.train --config $am_config --tokenizer $tts_data \
    --train-cuts $tts_data/cuts_train.jsonl.gz --dev-cuts $tts_data/cuts_valid.jsonl.gz \
    --out $am --resume $am_args
fi

if [ -n "$vocoder" ] && [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "stage 4: train the vocoder $vocoder"
  python -m speechkit.bin.train --config $vocoder_config --train-cuts $data/cuts_train.jsonl.gz \
    --dev-cuts $data/cuts_dev.jsonl.gz --out $vocoder --resume $vocoder_args
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: synthesise the test sentences (${vocoder:-Griffin-Lim}) -> $am/synth_test"
  python -m speechkit.bin.tts_synthesize --model $am/model_avg.pt \
    --cuts $tts_data/cuts_test.jsonl.gz --out $am/synth_test --limit $limit \
    ${vocoder:+--vocoder $vocoder}
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: ${whisper:-no} WER, MCD and F0 against the recordings -> $results; $png"
  python -m speechkit.bin.tts_score --synth $am/synth_test --whisper "$whisper" \
    --results-md $results --title "$am: LJSpeech test" --command "$repro"
  python -m speechkit.bin.tts_plot --synth $am/synth_test --out $png
fi
log "done"
