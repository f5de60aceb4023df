#!/usr/bin/env bash
# Fine-tune Whisper on the phrasebook corpus; WER/BLEU on the test sets before and after.
#   ./run.sh                                        # whisper-tiny.en, English ASR
#   ./run.sh --model whisper-base --config ../../../conf/whisper/finetune_base.yaml \
#            --languages eng,deu,spa,fra --tasks asr,st_eng --exp exp/whisper_base_ft
#   ./run.sh --stage 4 --stop_stage 5
#   ./run.sh ... --max_utts 10     # score the first 10 test utterances per language and task
# Stages: 1 corpus (reused when an identical build is in $data), 2 download the model,
#         3 decode + score BEFORE fine-tuning -> RESULTS.md, 4 fine-tune,
#         5 decode + score AFTER -> RESULTS.md, 6 pack the fine-tuned model.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=6
model=whisper-tiny.en
config=../../../conf/whisper/finetune_tiny_en.yaml
data=../s2t1/data/phrasebook   # the s2t1 recipe's corpus (same generator arguments)
hours=2.0
seed=0
nj=2
language_weights=eng=3  # hours, seed and weights must match the s2t1 recipe's: its corpus is reused
languages=eng        # spoken languages to decode and score
tasks=asr            # asr, and st_eng (X -> English) for multilingual models
beam=5
max_utts=0           # decode the first N utterances per language and task (0 = all)
exp=exp/whisper_tiny_en_ft
results=RESULTS.md
train_args=""        # extra --set overrides, e.g. "--set trainer.max_steps=100"

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }
subset=""; if [ "$max_utts" -gt 0 ]; then subset=" --max_utts $max_utts"; fi
repro="cd egs/phrasebook/whisper1 && ./run.sh --model $model --config $config --languages $languages --tasks $tasks --beam $beam$subset --exp $exp${train_args:+ --train_args '$train_args'}"
decode="python -m speechkit.bin.decode --languages $languages --tasks $tasks --beam-size $beam --max-per-output $max_utts"

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: phrasebook corpus ($hours h) in $data"
  python -m speechkit.bin.prepare_phrasebook --out $data --hours $hours --seed $seed --num-jobs $nj \
    --language-weights "$language_weights"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: download $model into the speechkit cache"
  speechkit zoo download $model
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "stage 3: decode and score the test sets with $model BEFORE fine-tuning"
  $decode --model $model --cuts $data/cuts_test_seen.jsonl.gz --out $exp/before_test_seen
  $decode --model $model --cuts $data/cuts_test_novel.jsonl.gz --out $exp/before_test_novel
  python -m speechkit.bin.score --decode-dir $exp/before_test_seen --results-md $results \
    --title "$model BEFORE fine-tuning: test_seen" --command "$repro --stage 3 --stop_stage 3"
  python -m speechkit.bin.score --decode-dir $exp/before_test_novel --results-md $results \
    --title "$model BEFORE fine-tuning: test_novel" --command "$repro --stage 3 --stop_stage 3"
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "stage 4: fine-tune $model into $exp"
  python -m speechkit.bin.train --config $config --init $model \
    --train-cuts $data/cuts_train.jsonl.gz --dev-cuts $data/cuts_dev.jsonl.gz \
    --out $exp --resume $train_args
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: decode and score the test sets with the fine-tuned model"
  $decode --model $exp/model_avg.pt --cuts $data/cuts_test_seen.jsonl.gz --out $exp/after_test_seen
  $decode --model $exp/model_avg.pt --cuts $data/cuts_test_novel.jsonl.gz --out $exp/after_test_novel
  python -m speechkit.bin.score --decode-dir $exp/after_test_seen --results-md $results \
    --title "$model AFTER fine-tuning ($exp): test_seen" --command "$repro"
  python -m speechkit.bin.score --decode-dir $exp/after_test_novel --results-md $results \
    --title "$model AFTER fine-tuning ($exp): test_novel" --command "$repro"
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: pack the fine-tuned model in $exp/packed"
  python -m speechkit.bin.pack_model --checkpoint $exp/model_avg.pt --out $exp/packed
fi
log "done"
