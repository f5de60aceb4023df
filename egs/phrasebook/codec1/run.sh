#!/usr/bin/env bash
# Neural speech codec on the phrasebook corpus: a teacher S2T model, the codec with and without
# semantic distillation of its first codebook, coding of the test sets, and the benchmark
# against Opus and Codec2 (PESQ, STOI, SI-SDR, speaker similarity, WER) -> RESULTS.md.
#   ./run.sh                          # CPU-sized default, spectral codec (~55 min; RESULTS.md)
#   ./run.sh --stage 0 --stop_stage 0 # (root) install opus-tools and codec2 for the comparison
#   ./run.sh --codec_config ../../../conf/codec/spectral_gpu.yaml --hours 20 --exp exp/gpu
#   ./run.sh --codec_config ../../../conf/codec/phrasebook_cpu.yaml   # the conv backbone
#   ./run.sh --stage 3 --teacher ../s2t1/exp/s2t_tiny/model_avg.pt   # reuse an s2t1 model
# Stages: 0 system tools (apt-get), 1 corpus (English, every voice incl. Piper in training,
#         unseen speakers in test), 2 teacher S2T model, 3 train the codec (distilled) and the
#         ablation (no teacher), 4 pack both, 5 encode + decode the test sets (speechkit codec),
#         6 codes-to-text S2T models on the first codebook of each codec (the distillation
#         ablation), 7 benchmark -> RESULTS.md + spectrograms PNG.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=7
hours=0.5          # hours of English audio in the generated corpus (train 85 %, dev/tests 5 % each)
nj=2               # parallel jobs for corpus synthesis; with nj >= 2 the two codecs of stage 3
                   # (and the two S2T models of stage 6) train side by side, one thread each
seed=0
data=data/phrasebook
exp=exp
teacher_config=../../../conf/codec/teacher_s2t_eng.yaml
teacher=""         # the S2T teacher (default: $exp/s2t_teacher/model_avg.pt, trained in stage 2), or any s2t model
codec_config=../../../conf/codec/spectral_cpu.yaml   # (phrasebook_cpu.yaml: the conv backbone)
codes_config=../../../conf/codec/s2t_codes_cpu.yaml   # S2T over codec codes (first codebook)
kbps=6             # bitrate of the coded test sets of stage 5
limit=40           # English test utterances in the benchmark
results=RESULTS.md
png=spectrograms.png
train_args=""      # extra --set overrides for both codec trainings, e.g. "--set trainer.max_steps=50"
teacher_args=""    # ... for the teacher S2T training
codes_args=""      # ... for the two codes-to-text S2T trainings
whisper=whisper-tiny.en   # the benchmark's Whisper (zoo name or packed dir; "" = none)

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"
teacher=${teacher:-$exp/s2t_teacher/model_avg.pt}  # (after the options: --exp moves it)

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }
# Two trainings of one stage: in the background when nj >= 2 (wait_all waits for both and fails
# if either failed), one after the other otherwise.
pids=()
side_by_side() { if [ "$nj" -ge 2 ]; then "$@" & pids+=($!); else "$@"; fi; }
wait_all() { local p; for p in "${pids[@]}"; do wait "$p"; done; pids=(); }
tests="$data/cuts_test_seen.jsonl.gz $data/cuts_test_novel.jsonl.gz"
repro="cd egs/phrasebook/codec1 && ./run.sh --hours $hours --seed $seed --codec_config $codec_config${train_args:+ --train_args '$train_args'}"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "stage 0: install the reference codecs (opus-tools, codec2)"
  apt-get install -y opus-tools codec2
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: generate the English phrasebook corpus ($hours h) in $data"
  python -m speechkit.bin.prepare_phrasebook --out $data --hours $hours --seed $seed --num-jobs $nj \
    --languages eng
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: tokenizer and the teacher S2T model $exp/s2t_teacher"
  python -m speechkit.bin.train_tokenizer --config $teacher_config --cuts $data/cuts_train.jsonl.gz \
    --out $data/tokenizer
  python -m speechkit.bin.train --config $teacher_config --train-cuts $data/cuts_train.jsonl.gz \
    --dev-cuts $data/cuts_dev.jsonl.gz --tokenizer $data/tokenizer --out $exp/s2t_teacher --resume \
    $teacher_args
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "stage 3: train the codec with distillation from $teacher, and without (ablation)"
  side_by_side python -m speechkit.bin.train --config $codec_config --train-cuts $data/cuts_train.jsonl.gz \
    --dev-cuts $data/cuts_dev.jsonl.gz --out $exp/codec_distill --resume \
    --set distill.teacher=$teacher $train_args
  side_by_side python -m speechkit.bin.train --config $codec_config --train-cuts $data/cuts_train.jsonl.gz \
    --dev-cuts $data/cuts_dev.jsonl.gz --out $exp/codec_nodistill --resume \
    --set distill.enabled=false $train_args
  wait_all
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "stage 4: pack both codecs"
  python -m speechkit.bin.codec pack --checkpoint $exp/codec_distill/model_avg.pt --out $exp/codec_distill/packed
  python -m speechkit.bin.codec pack --checkpoint $exp/codec_nodistill/model_avg.pt --out $exp/codec_nodistill/packed
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: encode and decode the test sets at $kbps kbps"
  python -m speechkit.bin.codec encode --model $exp/codec_distill/packed --kbps $kbps \
    --cuts $data/cuts_test_seen.jsonl.gz --out $exp/codec_distill/codes_test_seen
  python -m speechkit.bin.codec decode --model $exp/codec_distill/packed \
    --cuts $exp/codec_distill/codes_test_seen/cuts.jsonl.gz --out $exp/codec_distill/resynth_test_seen
  python -m speechkit.bin.codec encode --model $exp/codec_distill/packed --kbps $kbps \
    --cuts $data/cuts_test_novel.jsonl.gz --out $exp/codec_distill/codes_test_novel
  python -m speechkit.bin.codec decode --model $exp/codec_distill/packed \
    --cuts $exp/codec_distill/codes_test_novel/cuts.jsonl.gz --out $exp/codec_distill/resynth_test_novel
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: S2T models over the first codebook of each codec (distillation ablation)"
  side_by_side python -m speechkit.bin.train --config $codes_config --train-cuts $data/cuts_train.jsonl.gz \
    --dev-cuts $data/cuts_dev.jsonl.gz --tokenizer $data/tokenizer --out $exp/s2t_codes_distill \
    --resume --set data.features.codec=$exp/codec_distill/packed $codes_args
  side_by_side python -m speechkit.bin.train --config $codes_config --train-cuts $data/cuts_train.jsonl.gz \
    --dev-cuts $data/cuts_dev.jsonl.gz --tokenizer $data/tokenizer --out $exp/s2t_codes_nodistill \
    --resume --set data.features.codec=$exp/codec_nodistill/packed $codes_args
  wait_all
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  log "stage 7: benchmark against Opus and Codec2 -> $results, $png"
  python -m speechkit.bench.codec --codec $exp/codec_distill/packed --cuts $tests --limit $limit \
    --kbps 0.5 1.5 3 6 --s2t $teacher --whisper "$whisper" --png $png --results-md $results \
    --title "Codec (distilled first codebook) vs Opus and Codec2"
  python -m speechkit.bench.codec --codec $exp/codec_nodistill/packed --cuts $tests --limit $limit \
    --kbps 0.5 1.5 3 6 --opus --codec2 --s2t $teacher --whisper "$whisper" --results-md $results \
    --title "Ablation: the same codec trained without distillation"
  python -m speechkit.bench.codec --codec $exp/codec_distill/packed --cuts $tests --limit $limit \
    --kbps --opus --codec2 --whisper "" --results-md $results \
    --s2t logmel=$teacher codes_distill=$exp/s2t_codes_distill/model_avg.pt \
    codes_nodistill=$exp/s2t_codes_nodistill/model_avg.pt \
    --title "Distillation ablation: S2T on the first codebook's codes (original audio)"
fi
log "done ($repro)"
