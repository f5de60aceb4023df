#!/usr/bin/env bash
# Context-driven dynamic pruning on the phrasebook (issue 15): gates on an over-parameterised
# E-Branchformer S2T model, conditioned on speaker, acoustic-event and language context.
#   ./run.sh                                   # stages 1-9 (the s2t arms)
#   ./run.sh --stage 2 --stop_stage 3
#   ./run.sh --base ../s2t1/exp/s2t_base/model_avg.pt   # reuse a base model: skips stage 4
#   ./run.sh --stage 5 --arms full,static,dyn,dyn_lang --seeds 0 --steps 400   # a short run
#   ./run.sh --stage 5 --gate_init base --settle 0 --ctc_weight 0   # the protocol before 2026-12-06
# Stage 5 by default: the full fine-tune of each seed, then each gated arm from it (gate_init
# full): 400 updates of gated fine-tuning, then 200 under its own frozen gates (settle) at
# learning rate 1e-4; decoding uses joint CTC (ctc_weight).
# Stages 10-12 (not in the default run: --stage 10): the same gates on a zoo Whisper model's
# decoder: 10 fine-tune the arms, 11 decode + score English at the budget, 12 speed (interleaved)
# and what each gated arm keeps at budgets 0.1-1.0 (gates_whisper_<arm>.png).
# A gated Whisper arm then transcribes any audio at a budget of your choice:
#   speechkit transcribe --model exp/whisper/dyn/model_avg.pt --budget 0.5 --language en a.wav
# Stages: 1 corpus (shared with s2t1) + tokenizer, 2 event tagger (+ its accuracy -> RESULTS.md),
#         3 speaker and event contexts of every cut, 4 base model (train, decode, score ->
#         RESULTS.md); 5 gated fine-tuning of the arms (speechkit/tasks/prune.py), 6 decode +
#         score at a budget, 7 speed against the full fine-tune (interleaved), 8 RESULTS.md
#         table + gate-usage pictures (per language, event, speaker group), 9 export the
#         static arm without its off modules.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=9                # stages 10-12 (gated Whisper) run when asked: --stage 10 --stop_stage 12
hours=2.0                 # the s2t1 corpus (same arguments: an existing build is reused as is)
language_weights=eng=3
seed=0
nj=2
data=../s2t1/data/phrasebook
contexts=data/contexts    # speaker.safetensors, event.safetensors for every cut of every split
tokenizer=data/tokenizer  # this recipe's own (s2t1's stays as its models need it)
conf=../../../conf
base_config=$conf/s2t/phrasebook_base15m.yaml
tagger_config=$conf/prune/tagger.yaml
exp=exp                   # holds tagger/ and base15m/
base=""                   # an existing base model (.pt / packed dir) instead of training stage 4
beam=5
ctc_weight=0.3             # joint CTC weight of every decode (0: attention alone, as before 2026-12-06)
results=RESULTS.md
tagger_args=""            # extra --set key=value overrides for the tagger, e.g. "--set trainer.max_steps=50"
train_args=""             # the same for the base model
prune_config=$conf/prune/phrasebook_prune.yaml
arms=full,static,dyn,dyn_spk,dyn_evt,dyn_lang,dyn_all   # speechkit/bin/prune_arms.py
seeds=0,1
steps=600                 # updates per arm
settle=200                # > 0: the last N of a gated arm's updates settle its weights under its
                          # frozen gates (prune.settle; speechkit/bin/prune_arms.py; RESULTS.md)
settle_args="optim.lr=0.0001"  # key=value overrides of the settle phase only
gate_init=full            # full: the gated arms start from their seed's full fine-tune (trained first):
                          # pruning after fine-tuning; base: every arm fine-tunes the base model
                          # (the runs before 2026-12-06: --gate_init base --settle 0 --ctc_weight 0)
budget=0.5                # fraction of the gated modules' FLOPs kept at decode time
bench_utts=60             # utterances of the speed benchmark
prune_args=""             # extra key=value overrides for every arm, e.g. "prune.alpha=4"; decoder
                          # pruning for batch-1 speed (costs translation, RESULTS.md):
                          # "prune.split_budget=true model.gate_always_on=[cross_attn]"
# Gated Whisper (stages 10-12; speechkit/models/gated_whisper.py, decoder gates only):
whisper=whisper-tiny.en   # the zoo model to fine-tune (whisper-base: give a config with its languages)
whisper_config=$conf/prune/whisper_prune.yaml
whisper_arms="full static dyn"   # full = the same loop with gate_mode none
whisper_steps=150
whisper_utts=60           # utterances of the speed benchmark (English test_seen)
whisper_args=""           # extra key=value overrides for every Whisper arm

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"
tagger_exp=$exp/tagger
base_exp=$exp/base15m

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }
base_model=${base:-$base_exp/model_avg.pt}
# How to reproduce what a stage writes into $results (recorded next to each figure).
repro="cd egs/phrasebook/prune1 && ./run.sh --data $data --hours $hours --seed $seed --exp $exp"

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: phrasebook corpus ($hours h) in $data (reused when already built), tokenizer"
  python -m speechkit.bin.prepare_phrasebook --out $data --hours $hours --seed $seed \
    --num-jobs $nj --language-weights "$language_weights"
  python -m speechkit.bin.train_tokenizer --config $base_config \
    --cuts $data/cuts_train.jsonl.gz --out $tokenizer
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: event tagger on the background classes -> $tagger_exp, accuracy -> $results"
  python -m speechkit.bin.train --config $tagger_config --train-cuts $data/cuts_train.jsonl.gz \
    --dev-cuts $data/cuts_dev.jsonl.gz --out $tagger_exp --resume $tagger_args
  python -m speechkit.bin.score_tagger --tagger $tagger_exp --cuts $data/cuts_test_seen.jsonl.gz \
    --json $tagger_exp/score_test_seen.json --results-md $results \
    --title "event tagger $tagger_exp: test_seen" --command "$repro --stage 2 --stop_stage 2"
  python -m speechkit.bin.score_tagger --tagger $tagger_exp --cuts $data/cuts_test_novel.jsonl.gz \
    --json $tagger_exp/score_test_novel.json --results-md $results \
    --title "event tagger $tagger_exp: test_novel" --command "$repro --stage 2 --stop_stage 2"
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "stage 3: speaker (Resemblyzer d-vector) and event (tagger embedding) contexts -> $contexts"
  python -m speechkit.bin.compute_contexts --cuts $data/cuts_train.jsonl.gz $data/cuts_dev.jsonl.gz \
    $data/cuts_test_seen.jsonl.gz $data/cuts_test_novel.jsonl.gz --kinds speaker,event \
    --tagger $tagger_exp --out $contexts
fi

if [ -z "$base" ] && [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "stage 4: base model $base_exp ($base_config), decoded and scored -> $results"
  python -m speechkit.bin.train --config $base_config --train-cuts $data/cuts_train.jsonl.gz \
    --dev-cuts $data/cuts_dev.jsonl.gz --tokenizer $tokenizer --out $base_exp --resume $train_args
  python -m speechkit.bin.decode --model $base_model --cuts $data/cuts_test_seen.jsonl.gz \
    --out $base_exp/decode_test_seen --beam-size $beam --ctc-weight $ctc_weight
  python -m speechkit.bin.decode --model $base_model --cuts $data/cuts_test_novel.jsonl.gz \
    --out $base_exp/decode_test_novel --beam-size $beam --ctc-weight $ctc_weight
  python -m speechkit.bin.score --decode-dir $base_exp/decode_test_seen --results-md $results \
    --title "base model $base_exp: test_seen (unseen speakers)" \
    --command "$repro --stage 4 --stop_stage 4"
  python -m speechkit.bin.score --decode-dir $base_exp/decode_test_novel --results-md $results \
    --title "base model $base_exp: test_novel (unseen speakers, novel sentences)" \
    --command "$repro --stage 4 --stop_stage 4"
fi

tests=($data/cuts_test_seen.jsonl.gz $data/cuts_test_novel.jsonl.gz)
grid=(--exp $exp --arms $arms --seeds $seeds --budget $budget --contexts $contexts --threads 1)
prune_repro="$repro --base $base_model --arms $arms --seeds $seeds --steps $steps --settle $settle${settle_args:+ --settle_args '$settle_args'} --gate_init $gate_init --budget $budget --beam $beam${prune_args:+ --prune_args '$prune_args'}"

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: fine-tune the arms of $base_model ($arms; seeds $seeds; $steps updates each; gated arms from the $gate_init)"
  train=(python -m speechkit.bin.prune_arms train "${grid[@]}" --config $prune_config
         --train-cuts $data/cuts_train.jsonl.gz --dev-cuts $data/cuts_dev.jsonl.gz --steps $steps
         --settle-steps $settle ${settle_args:+--settle-set $settle_args} ${prune_args:+--set $prune_args})
  if [ $gate_init = full ]; then
    "${train[@]}" --arms full --init $base_model
    gated=$(echo $arms | tr ',' '\n' | grep -v '^full$' | paste -sd, -)
    [ -z "$gated" ] || "${train[@]}" --arms $gated --init "$exp/full/s{seed}/model_avg.pt"
  else
    "${train[@]}" --init $base_model
  fi
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: decode and score the test sets at budget $budget"
  python -m speechkit.bin.prune_arms decode "${grid[@]}" --test-cuts "${tests[@]}" --beam $beam \
    --ctc-weight $ctc_weight
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  log "stage 7: RTFx of each gated arm against the full fine-tune, interleaved"
  python -m speechkit.bin.prune_arms bench "${grid[@]}" --test-cuts ${tests[0]} --beam $beam \
    --max-utts $bench_utts
fi

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  log "stage 8: table and gate-usage pictures -> $results"
  python -m speechkit.bin.prune_arms report "${grid[@]}" --results-md $results --ctc-weight $ctc_weight \
    --test-cuts ${tests[0]} --command "$prune_repro --stage 5"
fi

if [ $stage -le 9 ] && [ $stop_stage -ge 9 ]; then
  log "stage 9: export the static arm without its off modules at budget $budget"
  python -m speechkit.bin.prune_export --model $exp/static/s${seeds%%,*}/model_avg.pt \
    --budget $budget --out $exp/static/s${seeds%%,*}/packed_b$budget
fi

wexp=$exp/whisper
wrepro="$repro --whisper $whisper --whisper_config $whisper_config --whisper_steps $whisper_steps --budget $budget --beam $beam${whisper_args:+ --whisper_args '$whisper_args'}"
if [ $stage -le 10 ] && [ $stop_stage -ge 10 ]; then
  for arm in $whisper_arms; do
    mode=$arm; [ $arm = full ] && mode=none; [ $arm = dyn ] && mode=dynamic
    log "stage 10: fine-tune $whisper with decoder gates, arm $arm (gate_mode $mode), $whisper_steps updates"
    python -m speechkit.bin.train --config $whisper_config --init $whisper \
      --train-cuts $data/cuts_train.jsonl.gz --dev-cuts $data/cuts_dev.jsonl.gz --out $wexp/$arm \
      --resume --set gates.gate_mode=$mode trainer.max_steps=$whisper_steps \
      trainer.valid_every_steps=$whisper_steps $whisper_args  # (one validation: 30 s windows)
  done
fi

if [ $stage -le 11 ] && [ $stop_stage -ge 11 ]; then
  for arm in $whisper_arms; do
    for t in test_seen test_novel; do
      log "stage 11: decode $t with $wexp/$arm at budget $budget"
      python -m speechkit.bin.decode --model $wexp/$arm/model_avg.pt --cuts $data/cuts_$t.jsonl.gz \
        --out $wexp/$arm/decode_$t --beam-size $beam --budget $budget
      python -m speechkit.bin.score --decode-dir $wexp/$arm/decode_$t --results-md $results \
        --title "gated Whisper ($whisper), arm $arm: $t" --command "$wrepro --stage 10 --stop_stage 11"
    done
  done
fi

if [ $stage -le 12 ] && [ $stop_stage -ge 12 ]; then
  for arm in $whisper_arms; do
    [ $arm = full ] && continue
    log "stage 12: $wexp/$arm against $wexp/full, interleaved ($whisper_utts English test_seen utts)"
    python -m speechkit.bench.prune_whisper --gated $wexp/$arm/model_avg.pt \
      --full $wexp/full/model_avg.pt --budget $budget --cuts $data/cuts_test_seen.jsonl.gz \
      --language eng --max-utts $whisper_utts --beam $beam --results-md $results \
      --label "$whisper, arm $arm, budget $budget"
    log "stage 12: what $wexp/$arm keeps at each budget -> gates_whisper_$arm.png"
    python -m speechkit.bench.whisper_gate_map --model $wexp/$arm/model_avg.pt \
      --budgets 0.1 0.3 0.5 0.7 0.9 1.0 --cuts $data/cuts_test_seen.jsonl.gz --language eng \
      --max-utts $whisper_utts --beam 1 --png $(dirname $results)/gates_whisper_$arm.png \
      --results-md $results --label "$whisper, arm $arm"
  done
fi

log "done"
