#!/usr/bin/env bash
# Context-driven dynamic pruning (arXiv 2409.09506, 2505.18860) of a phrasebook s2t model: gates
# on every encoder/decoder module, decided per utterance from the audio, speaker / acoustic-event
# / language context and a compute budget given at decode time (speechkit/tasks/prune.py).
#   ./run.sh                                   # all stages, every arm, 2 seeds
#   ./run.sh --stage 2 --arms full,static,dyn,dyn_lang --seeds 0 --steps 400   # a short run
# Stages: 0 base model (s2t, >= 15M parameters), 1 contexts (speaker d-vectors, event-tagger
#         embeddings), 2 fine-tune the arms, 3 decode + score, 4 speed (interleaved against the
#         full fine-tune), 5 RESULTS.md table + gate-usage pictures, 6 export the static arm.
# The corpus and its tokenizer come from ../s2t1 (its stages 1-2).
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=0
stop_stage=6
data=../s2t1/data/phrasebook
contexts=data/contexts
base_config=../../../conf/s2t/phrasebook_base15m.yaml
base=exp/base15m/model_avg.pt     # the model the arms fine-tune (stage 0 trains it)
base_args=""       # extra --set overrides for the base model's training
config=../../../conf/prune/phrasebook_prune.yaml
arms=full,static,dyn,dyn_spk,dyn_evt,dyn_lang,dyn_all
seeds=0,1
steps=600          # updates per arm
budget=0.5         # fraction of the gated modules' FLOPs kept at decode time
beam=1
bench_utts=60
threads=1
exp=exp
results=RESULTS.md
train_args=""      # extra --set overrides for every arm, e.g. "prune.alpha=4"

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }
repro="cd egs/phrasebook/prune1 && ./run.sh --base $base --arms $arms --seeds $seeds --steps $steps --budget $budget --beam $beam${train_args:+ --train_args '$train_args'}"
tests=($data/cuts_test_seen.jsonl.gz $data/cuts_test_novel.jsonl.gz)
grid=(--exp $exp --arms $arms --seeds $seeds --budget $budget --contexts $contexts --threads $threads)

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "stage 0: base model $base ($base_config)"
  python -m speechkit.bin.train --config $base_config --train-cuts $data/cuts_train.jsonl.gz \
    --dev-cuts $data/cuts_dev.jsonl.gz --tokenizer $data/tokenizer --out "$(dirname $base)" --resume \
    ${base_args:+--set $base_args}
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: speaker and acoustic-event contexts of every cut -> $contexts"
  python -m speechkit.bin.compute_contexts --kinds speaker,event --out $contexts \
    --cuts $data/cuts_train.jsonl.gz $data/cuts_dev.jsonl.gz "${tests[@]}"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: fine-tune the arms ($arms; seeds $seeds; $steps updates each)"
  python -m speechkit.bin.prune_arms train "${grid[@]}" --config $config --init $base \
    --train-cuts $data/cuts_train.jsonl.gz --dev-cuts $data/cuts_dev.jsonl.gz \
    --set trainer.max_steps=$steps $train_args
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "stage 3: decode and score the test sets at budget $budget"
  python -m speechkit.bin.prune_arms decode "${grid[@]}" --test-cuts "${tests[@]}" --beam $beam
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "stage 4: RTFx of each gated arm against the full fine-tune, interleaved"
  python -m speechkit.bin.prune_arms bench "${grid[@]}" --test-cuts ${tests[0]} --beam $beam \
    --max-utts $bench_utts
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: table and gate-usage pictures -> $results"
  python -m speechkit.bin.prune_arms report "${grid[@]}" --results-md $results --command "$repro"
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: export the static arm without its off modules at budget $budget"
  python -m speechkit.bin.prune_export --model $exp/static/s${seeds%%,*}/model_avg.pt \
    --budget $budget --out $exp/static/s${seeds%%,*}/packed_b$budget
fi
log "done"
