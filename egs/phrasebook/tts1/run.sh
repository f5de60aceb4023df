#!/usr/bin/env bash
# Multi-speaker, multilingual TTS on the phrasebook corpus (issue 18): phonemes and clean-enough
# cuts, a FastSpeech 2 acoustic model with a jointly learned aligner (no teacher), a vocoder,
# synthesis of held-out and test texts, S2T trained with and without synthesised novel sentences,
# and scoring (Whisper and S2T WER in four languages, MCD, F0, speaker similarity) -> RESULTS.md.
#   ./run.sh                                            # CPU-sized default (RESULTS.md)
#   ./run.sh --stage 2 --corpus ../s2t1/data/phrasebook # reuse the corpus s2t1 generated
#   ./run.sh --am_config ../../../conf/tts/phrasebook_fs2_gpu.yaml --hours 20 --exp exp/gpu
# Stages: 1 corpus (four languages, every voice incl. Piper), 2 phonemes, cut selection and the
#         vocabulary (speechkit.bin.prepare_tts), 3 acoustic model training (durations from the
#         aligner, pitch/energy targets computed from the audio on the fly), 4 vocoder training
#         (speechkit/tasks/vocoder.py), 5 the acoustic model's teacher-forced mels of its
#         training cuts (speechkit.bin.tts_gta) and the stage-4 vocoder fine-tuned on them,
#         6 synthesis of held-out training cuts and of the test texts
#         (speechkit.bin.tts_synthesize, through the stage-5 vocoder), 7 augmentation data:
#         half of the grammar's novel sentences (speechkit.bin.phrasebook_texts --part) in all
#         four languages, said by the training voices (speechkit synthesize --speaker auto), 8 S2T (the s2t1
#         config and tokenizer) trained without and with that synthesis, one pair per seed, and
#         decoded on test_novel, 9 scoring and the mel/pitch picture (speechkit.bin.tts_score
#         with the Whisper models and the baseline S2T model as judges, speechkit bench
#         tts-augment, speechkit.bin.tts_plot).
# Codec stages (opt-in: ./run.sh --stage 10 --stop_stage 13, after stages 1-2; stage 8's S2T
#         model is a judge in stage 13 where it exists): the codec's
#         decoder as the vocoder, codes as the targets. 10 a speechkit codec trained on the TTS
#         cuts (conf/codec/spectral_cpu.yaml, no distillation) and packed, 11 the training and
#         held-out cuts encoded into its codes (speechkit codec encode --cuts), 12 FastSpeech 2
#         with codec targets (conf/tts/phrasebook_fs2_codec_cpu.yaml), 13 synthesis of the
#         held-out cuts and the test texts through the codec, scored like stage 9, and its
#         picture (mels_codec.png).
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=9
hours=2.0           # hours of audio in the generated corpus (as s2t1)
nj=2
piper=auto          # the Piper English voice: auto (when installed), on, off
seed=0
corpus=data/phrasebook
data=data/tts
exp=exp
am_config=../../../conf/tts/phrasebook_fs2_cpu.yaml
vocoder_config=../../../conf/tts/vocoder_cpu.yaml
gta_config=../../../conf/tts/vocoder_gta_cpu.yaml  # the same vocoder size as vocoder_config
events="clean"      # cuts kept whatever their SNR; others need --min_snr_db
min_snr_db=25
valid=100           # training cuts held out for validation and the same-voice scores
limit=40            # cuts per language in each synthesis set
whisper=whisper-tiny.en   # "" = no Whisper scoring (MCD and F0 only)
judges=whisper-base       # judges of all four languages beside the first baseline S2T model
s2t_config=../../../conf/s2t/phrasebook_tiny.yaml
aug_part=0/2              # the part of the novel sentences synthesised for S2T training
aug_seeds="42 1"          # one baseline and one augmented S2T model per seed
s2t_args=""               # extra --set overrides for the S2T models, e.g. "--set trainer.max_steps=20"
png=mels.png
results=RESULTS.md        # stage 9 writes the augmentation table here
synth_vocoder=""    # the vocoder of stages 6-7: "" = the one stage 5 fine-tunes, griffin-lim = none
am_args=""          # extra --set overrides for the acoustic model, e.g. "--set trainer.max_steps=50"
vocoder_args=""     # ... for the vocoder
gta_args=""         # ... for its fine-tuning on the acoustic model's mels (stage 5)
codec_config=../../../conf/codec/spectral_cpu.yaml       # stage 10
am_codec_config=../../../conf/tts/phrasebook_fs2_codec_cpu.yaml  # stage 12
codec_args=""       # extra --set overrides for the codec (stage 10)
am_codec_args=""    # ... for the acoustic model with codec targets (stage 12)
codec_png=mels_codec.png  # stage 13's picture (as stage 9's, through the codec)

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }
am=$exp/fs2
first_seed=${aug_seeds%% *}
synth_vocoder=${synth_vocoder:-$exp/vocoder_gta}

# Two trainings side by side: in the background when nj >= 2 (wait_all waits for both and fails
# if either failed), one after the other otherwise. Stages 3 and 4 (one thread each) share the
# two cores this way, as do the two S2T arms of a seed in stage 8.
pids=()
side_by_side() { if [ "$nj" -ge 2 ]; then "$@" & pids+=($!); else "$@"; fi; }
wait_all() { local p; for p in "${pids[@]}"; do wait "$p"; done; pids=(); }

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
  side_by_side python -m speechkit.bin.train --config $am_config --tokenizer $data \
    --train-cuts $data/cuts_train.jsonl.gz --dev-cuts $data/cuts_valid.jsonl.gz --out $am --resume \
    $am_args
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  # The APNet/Vocos-style vocoder on the same log-mel format (speechkit/tts/mel.py), learning
  # from real mels; stage 5 fine-tunes it on the acoustic model's (RESULTS.md).
  log "stage 4: train the vocoder $exp/vocoder"
  side_by_side python -m speechkit.bin.train --config $vocoder_config \
    --train-cuts $corpus/cuts_train.jsonl.gz --dev-cuts $corpus/cuts_dev.jsonl.gz \
    --out $exp/vocoder --resume $vocoder_args
fi
wait_all  # the acoustic model and the vocoder

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  # HiFi-GAN's fine-tuning: the vocoder hears the acoustic model's smoothed mels (teacher-forced,
  # so aligned with the recordings) and learns to give the recordings back (RESULTS.md: held-out
  # WER 29.8 -> 22 %).
  log "stage 5: teacher-forced mels of $am; the vocoder fine-tuned on them -> $exp/vocoder_gta"
  for part in train valid; do
    python -m speechkit.bin.tts_gta --model $am/model_avg.pt --cuts $data/cuts_$part.jsonl.gz \
      --out $am/gta_$part
  done
  python -m speechkit.bin.train --config $gta_config --init $exp/vocoder \
    --train-cuts $am/gta_train/cuts.jsonl.gz --dev-cuts $am/gta_valid/cuts.jsonl.gz \
    --out $exp/vocoder_gta --resume $gta_args
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: synthesise held-out training cuts (same voices) and the test texts (seen voices)"
  python -m speechkit.bin.tts_synthesize --model $am/model_avg.pt --vocoder $synth_vocoder \
    --cuts $data/cuts_valid.jsonl.gz --out $am/synth_valid
  python -m speechkit.bin.tts_synthesize --model $am/model_avg.pt --vocoder $synth_vocoder \
    --cuts $data/cuts_test.jsonl.gz --out $am/synth_test --limit $limit
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  log "stage 7: novel sentences (part $aug_part) said by the training voices -> $data/synth_novel"
  python -m speechkit.bin.phrasebook_texts --split novel --part $aug_part --seed $seed \
    --out $data/novel_texts.jsonl.gz
  python -m speechkit.bin.synthesize --model $am/model_avg.pt --vocoder $synth_vocoder \
    --cuts $data/novel_texts.jsonl.gz --speaker auto --out-dir $data/synth_novel --name novel \
    --threads 1
fi

# One S2T model: train, then decode test_novel.
s2t_arm() {  # name seed extra-train-cuts...
  local name=$1 seed=$2; shift 2
  python -m speechkit.bin.train --config $s2t_config --tokenizer $corpus/tokenizer \
    --train-cuts $corpus/cuts_train.jsonl.gz "$@" --dev-cuts $corpus/cuts_dev.jsonl.gz \
    --out $exp/s2t_${name}_s$seed --resume --set trainer.seed=$seed trainer.num_threads=$threads \
    $s2t_args
  python -m speechkit.bin.decode --model $exp/s2t_${name}_s$seed/model_avg.pt \
    --cuts $corpus/cuts_test_novel.jsonl.gz --out $exp/s2t_${name}_s$seed/decode_test_novel \
    --beam-size 5 --ctc-weight 0.3 --threads $threads
}

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  if [ ! -f $corpus/tokenizer/tokenizer.model ]; then
    python -m speechkit.bin.train_tokenizer --config $s2t_config --cuts $corpus/cuts_train.jsonl.gz \
      --out $corpus/tokenizer
  fi
  threads=$([ $nj -ge 2 ] && echo 1 || echo 2)
  for s in $aug_seeds; do
    log "stage 8: S2T seed $s without and with the synthesised novel sentences"
    side_by_side s2t_arm base $s
    side_by_side s2t_arm aug $s $data/synth_novel/cuts_novel.jsonl.gz
    wait_all
  done
fi

if [ $stage -le 9 ] && [ $stop_stage -ge 9 ]; then
  log "stage 9: scores ($whisper, $judges and the S2T baseline; MCD, F0, speaker similarity), the picture $png"
  python -m speechkit.bin.tts_score --synth $am/synth_valid --whisper "$whisper" \
    --judges $judges $exp/s2t_base_s$first_seed/model_avg.pt
  python -m speechkit.bin.tts_score --synth $am/synth_test --whisper "$whisper" ${whisper:+--engines} \
    --judges $judges $exp/s2t_base_s$first_seed/model_avg.pt
  python -m speechkit.bin.tts_plot --synth $am/synth_valid --out $png
  python -m speechkit.bench.tts_augment --cuts $corpus/cuts_test_novel.jsonl.gz \
    --added $data/synth_novel/cuts_novel.jsonl.gz \
    --arm baseline $(for s in $aug_seeds; do echo $exp/s2t_base_s$s/decode_test_novel; done) \
    --arm augmented $(for s in $aug_seeds; do echo $exp/s2t_aug_s$s/decode_test_novel; done) \
    --results-md $results --title "S2T with and without synthesised novel sentences (test_novel)"
fi

codec=$exp/codec
am_codec=$exp/fs2_codec
if [ $stage -le 10 ] && [ $stop_stage -ge 10 ]; then
  log "stage 10: train the codec $codec on the TTS cuts and pack it"
  python -m speechkit.bin.train --config $codec_config --train-cuts $data/cuts_train.jsonl.gz \
    --dev-cuts $data/cuts_valid.jsonl.gz --out $codec --resume --set distill.enabled=false $codec_args
  python -m speechkit.bin.codec pack --checkpoint $codec/model_avg.pt --out $codec/packed
fi

if [ $stage -le 11 ] && [ $stop_stage -ge 11 ]; then
  log "stage 11: the training and held-out cuts in $codec's codes (every codebook) -> $data/codes_*"
  for part in train valid; do
    python -m speechkit.bin.codec encode --model $codec/packed --cuts $data/cuts_$part.jsonl.gz \
      --out $data/codes_$part
  done
fi

if [ $stage -le 12 ] && [ $stop_stage -ge 12 ]; then
  log "stage 12: train the acoustic model with codec targets $am_codec"
  python -m speechkit.bin.train --config $am_codec_config --tokenizer $data \
    --train-cuts $data/codes_train/cuts.jsonl.gz --dev-cuts $data/codes_valid/cuts.jsonl.gz \
    --out $am_codec --resume --set codec.model=$codec/packed $am_codec_args
fi

if [ $stage -le 13 ] && [ $stop_stage -ge 13 ]; then
  log "stage 13: synthesis through the codec's decoder, scored as in stage 9"
  python -m speechkit.bin.tts_synthesize --model $am_codec/model_avg.pt --vocoder $codec/packed \
    --cuts $data/cuts_valid.jsonl.gz --out $am_codec/synth_valid
  python -m speechkit.bin.tts_synthesize --model $am_codec/model_avg.pt --vocoder $codec/packed \
    --cuts $data/cuts_test.jsonl.gz --out $am_codec/synth_test --limit $limit
  s2t_judge=$exp/s2t_base_s$first_seed/model_avg.pt  # (stage 8's; left out when absent)
  [ -f $s2t_judge ] || s2t_judge=""
  for part in valid test; do
    python -m speechkit.bin.tts_score --synth $am_codec/synth_$part --whisper "$whisper" \
      --judges $judges $s2t_judge
  done
  python -m speechkit.bin.tts_plot --synth $am_codec/synth_valid --out $codec_png
fi
log "done"
