#!/usr/bin/env bash
# Every GPU-only check of speechkit in one time-boxed run (issue 20), for the minutes a GPU is lent.
#
#   bash tools/gpu_check.sh --out DIR [--data PHRASEBOOK_DIR] [--budget 470] [--train-seconds 60]
#                           [--hours 0.3] [--only STEP,...] [--dry-run] [--keep-work]
#
# Runs from a source checkout: speechkit is first laid out in a scratch directory as a wheel
# installs it (kernels/ becomes speechkit/kernels), nothing is pip-installed, nothing needs a
# network. Steps, in order, each under `timeout` and all within --budget seconds (a step that
# cannot start in the time left is recorded as skipped; so is one whose modules or data are
# missing, with the reason):
#   env              versions, device, optional modules -> env.json; GPU settings -> gpu_state_before.csv
#   stage            speechkit laid out as installed, in the scratch directory
#   cuda_tests       tests/kernels on the GPU, then every test marked `cuda`
#   kernel_shapes    kernel forward+backward vs reference at odd shapes, production tiles
#   bench_attention  TFLOP/s of triton, sdpa and eager: head dim 64 and 80, 512-4096, padded or not
#   corpus           phrasebook corpus (--data: carried from a machine that can synthesise it),
#                    tokenizer, 2D buckets, a long English file
#   train_shuffled, train_buckets1d, train_buckets2d
#                    --train-seconds of bf16 training per batching strategy (throughput)
#   train_fp16       a short fp16 run (GradScaler) with the triton attention backend
#   whisper          Whisper tiny.en long-form transcription on the GPU
#   gpu_state        the GPU's settings and memory as before; nothing of ours left on it
# Results in --out: steps.tsv (name, status, seconds, exit code, detail), summary.md,
# logs/<step>.log and each step's figure files (listed in kernels/RESULTS.md). Nothing changes
# the GPU's settings (no nvidia-smi writes, no resets); the scratch directory (Triton cache,
# experiments) is removed at the end unless --keep-work.
# --only runs the named steps (and env, stage, gpu_state, and the corpus where a step needs it),
# e.g. to rerun what failed in the device time left. --dry-run runs every step up to its first
# CUDA call (argument and config checks, the corpus at --hours, test collection) and exits 0 on
# a machine without a GPU.
set -uo pipefail  # not -e: a failed step is recorded and the next one runs

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="" data="" budget=470 train_seconds=60 hours=0.3 dry_run=0 keep_work=0 only=""
python=${PYTHON:-python3}
usage() { sed -n '3,4p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --data) data=$(cd "$2" && pwd); shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --train-seconds) train_seconds=$2; shift 2 ;;
    --hours) hours=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --keep-work) keep_work=1; shift ;;
    *) usage ;;
  esac
done
[ -n "$out" ] || usage
mkdir -p "$out/logs" && out=$(cd "$out" && pwd)
: > "$out/steps.tsv"
start=$(date +%s)
deadline=$((start + budget))
reserve=15  # seconds kept for gpu_state and the summary

work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
cleanup() { [ "$keep_work" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT
# The staged speechkit, not the checkout, must be what Python imports: run from the scratch
# directory (python -m puts the working directory first on the path) with absolute paths.
cd "$work"
export PYTHONPATH="$work/site" TRITON_CACHE_DIR="$work/triton-cache" PYTHONUNBUFFERED=1
dry=()
[ "$dry_run" = 1 ] && dry=(--dry-run)

log() { echo "[gpu_check $(date +%H:%M:%S)] $*"; }

record() {  # name status seconds exit_code detail
  local detail=${5//$'\t'/ }
  detail=${detail//|//}
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${detail:0:200}" >> "$out/steps.tsv"
  log "$1: $2 ($3 s) $detail"
}

selected() {  # selected NAME: whether --only (if given) asks for step NAME
  [ -z "$only" ] && return 0
  case "$1" in
    env|stage|gpu_state) return 0 ;;
    corpus) [[ ",$only," =~ ,(corpus|train_[a-z0-9]+|whisper), ]] ;;
    *) [[ ",$only," == *",$1,"* ]] ;;
  esac
}

# step NAME LIMIT COMMAND...: runs COMMAND under `timeout` (at most LIMIT seconds and never past
# the budget), output in logs/NAME.log. Exit 77 means skipped (reason on the log's last line).
step() {
  local name=$1 limit=$2 left rc t0 status
  shift 2
  if ! selected "$name"; then
    record "$name" skipped 0 - "not selected (--only $only)"
    return
  fi
  left=$((deadline - reserve - $(date +%s)))
  if [ "$left" -lt 10 ]; then
    record "$name" skipped 0 - "out of time: the budget of ${budget}s is spent"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "$name (at most ${limit}s)"
  t0=$(date +%s%N)
  # Through bash, so that COMMAND may be one of the exported functions below. Without
  # --foreground, timeout signals its whole process group: data loader workers and test
  # subprocesses end with the step.
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" > "$out/logs/$name.log" 2>&1
  rc=$?
  local ms=$((($(date +%s%N) - t0) / 1000000)) seconds last
  seconds="$((ms / 1000)).$((ms % 1000 / 100))"
  last=$(grep -v '^\s*$' "$out/logs/$name.log" | tail -n 1)
  case $rc in
    0) status=ok; [ "$dry_run" = 1 ] && status=dry-run ;;
    77) status=skipped ;;
    124|137) status=timeout; last="stopped after ${limit}s; $last" ;;
    *) status=failed ;;
  esac
  record "$name" "$status" "$seconds" "$rc" "$last"
}

gpu_state() {  # FILE: the GPU settings that a check must not change, as CSV
  nvidia-smi --format=csv --query-gpu=index,name,persistence_mode,compute_mode,power.limit,\
clocks.applications.graphics,clocks.applications.memory,mig.mode.current,memory.used > "$1"
}

env_step() {
  "$python" "$root/tools/gpu_check/report.py" env "$out" || return 1
  if [ "$dry_run" = 0 ] && ! "$python" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "no CUDA GPU visible: run with --dry-run on a machine without one"
    return 1
  fi
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi > "$out/nvidia-smi.txt" && gpu_state "$out/gpu_state_before.csv"
  else
    echo "nvidia-smi not found: GPU settings not recorded"
  fi
}

stage_step() {  # the layout setup.py's package_dir gives an installed speechkit
  mkdir -p "$work/site"
  cp -r "$root/speechkit" "$work/site/speechkit"
  cp -r "$root/kernels" "$work/site/speechkit/kernels"
  find "$work/site" -name __pycache__ -prune -exec rm -rf {} +
  "$python" -c "import importlib.util as u; print('speechkit.kernels from', u.find_spec('speechkit.kernels').origin)"
}

cuda_tests_step() {  # the kernel tests (all on the GPU there), then every `cuda`-marked test
  local collect=() rc=0
  [ "$dry_run" = 1 ] && collect=(--collect-only)
  local common=(-q -rs -p no:cacheprovider --basetemp="$work/pytest" "${collect[@]}")
  # test_wheel.py builds a wheel and checks the CPU fallback: nothing for the GPU to add.
  "$python" -m pytest "${common[@]}" --junitxml="$out/cuda_tests.xml" \
    --ignore="$root/tests/kernels/test_wheel.py" "$root/tests/kernels" || rc=1
  # Collection errors (a module some test file needs is missing here) do not stop the others.
  "$python" -m pytest "${common[@]}" -m cuda --continue-on-collection-errors \
    --junitxml="$out/cuda_marked_tests.xml" "$root/tests/nn" "$root/tests/models" \
    "$root/tests/train" || rc=1
  return $rc
}

missing_modules() {  # prints the modules of "$@" that do not import
  "$python" - "$@" <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
EOF
}

needs() {  # needs MODULE... -- COMMAND...: COMMAND, or exit 77 naming the missing modules
  local mods=() missing
  while [ "$1" != -- ]; do mods+=("$1"); shift; done
  shift
  missing=$(missing_modules "${mods[@]}")
  if [ -n "$missing" ]; then
    echo "skipped: python modules missing here: $missing"
    return 77
  fi
  "$@"
}

export -f log gpu_state env_step stage_step cuda_tests_step missing_modules needs
export root out work python dry_run

train_modules=(lhotse sentencepiece soundfile yaml tensorboard)
train() {  # train NAME SECONDS OVERRIDES...
  local name=$1 seconds=$2
  shift 2
  selected "train_$name" || { step "train_$name" 0; return; }  # records "not selected"
  local left=$((deadline - reserve - $(date +%s) - 25))  # 25 s: start-up and the final save
  [ "$seconds" -gt "$left" ] && seconds=$left
  if [ "$seconds" -lt 10 ]; then
    record "train_$name" skipped 0 - "out of time: the budget of ${budget}s is spent"
    return
  fi
  step "train_$name" $((seconds + 40)) needs "${train_modules[@]}" -- \
    "$python" "$root/tools/gpu_check/train.py" --name "$name" --corpus "$work/corpus" \
    --exp "$work/exp" --out "$out" --seconds "$seconds" "${dry[@]}" --set "$@"
}

log "output in $out; budget ${budget}s; scratch $work"
step env 30 env_step
step stage 20 stage_step
step cuda_tests 75 needs pytest -- cuda_tests_step
step kernel_shapes 45 needs triton -- \
  "$python" "$root/tools/gpu_check/kernel_shapes.py" --out "$out/kernel_shapes.jsonl" "${dry[@]}"
step bench_attention 100 needs triton -- \
  "$python" "$root/tools/bench_attention.py" --jsonl "$out/bench_attention.jsonl" \
  --results "$out/bench_attention.md" --skip-encoder "${dry[@]}"
corpus_args=(--work "$work/corpus" --hours "$hours" --config "$root/conf/s2t/phrasebook_tiny.yaml")
[ -n "$data" ] && corpus_args+=(--data "$data")
step corpus 90 needs "${train_modules[@]}" -- \
  "$python" "$root/tools/gpu_check/corpus.py" "${corpus_args[@]}"
train shuffled "$train_seconds" trainer.amp=bf16 data.sampler.bucketing=false
train buckets1d "$train_seconds" trainer.amp=bf16
train buckets2d "$train_seconds" trainer.amp=bf16 "data.sampler.buckets=$work/corpus/buckets.yaml"
train fp16 15 trainer.amp=fp16 model.attention_backend=triton
step whisper 60 needs soundfile jiwer -- \
  "$python" "$root/tools/gpu_check/whisper.py" --audio "$work/corpus/long.flac" --work "$work" \
  --out "$out" "${dry[@]}"

reserve=0
if command -v nvidia-smi > /dev/null && [ -f "$out/gpu_state_before.csv" ]; then
  gpu_state "$out/gpu_state_after.csv"
  step gpu_state 10 "$python" "$root/tools/gpu_check/report.py" gpu-state "$out"
else
  record gpu_state skipped 0 - "no nvidia-smi or no snapshot from before"
fi
"$python" "$root/tools/gpu_check/report.py" summary "$out" > /dev/null
log "done in $(($(date +%s) - start))s: $out/summary.md"
! cut -f2 "$out/steps.tsv" | grep -qE '^(failed|timeout)$'
