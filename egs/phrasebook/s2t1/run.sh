#!/usr/bin/env bash
# Phrasebook speech recognition + speech translation recipe (OWSM/Whisper-style model, CPU-sized).
#   ./run.sh                       # all stages
#   ./run.sh --stage 3 --stop_stage 4
# Stages: 1 corpus, 2 tokenizer, 3 train, 4 decode, 5 score -> RESULTS.md, 6 pack the model,
#         7 padding benchmark -> RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=7
hours=2.0          # hours of audio in the generated corpus (train 85 %, dev and tests 5 % each)
nj=2               # parallel jobs for corpus synthesis
language_weights=eng=3  # utterance share per language (others weigh 1): the figures that matter
                        # are English ASR and English->X ST; see RESULTS.md for 1 h / 2 h, eng=1..3
seed=0
config=../../../conf/s2t/phrasebook_tiny.yaml
data=data/phrasebook
exp=exp/s2t_tiny
beam=5
ctc_weight=0.3
results=RESULTS.md
train_args=""      # extra --set key=value overrides for training, e.g. "--set trainer.max_minutes=5"
init=""            # fine-tune a pretrained model (path or zoo name, e.g. owsm-v3.1-ebf-base, with
                   # --config ../../../conf/s2t/owsm_finetune.yaml): skips stage 2, its tokenizer is used

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }
# How to reproduce what this run writes into $results (recorded next to each figure).
repro="cd egs/phrasebook/s2t1 && ./run.sh --config $config --hours $hours${language_weights:+ --language_weights $language_weights} --seed $seed --exp $exp --beam $beam --ctc_weight $ctc_weight${train_args:+ --train_args '$train_args'}"

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: generate the phrasebook corpus ($hours h) in $data"
  python -m speechkit.bin.prepare_phrasebook --out $data --hours $hours --seed $seed --num-jobs $nj \
    --language-weights "$language_weights"
fi

if [ -z "$init" ] && [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: train the sentencepiece tokenizer"
  python -m speechkit.bin.train_tokenizer --config $config --cuts $data/cuts_train.jsonl.gz --out $data/tokenizer
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "stage 3: train $exp"
  python -m speechkit.bin.train --config $config --train-cuts $data/cuts_train.jsonl.gz \
    --dev-cuts $data/cuts_dev.jsonl.gz --tokenizer $data/tokenizer --out $exp --resume $train_args \
    ${init:+--init $init}
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "stage 4: decode the test sets (beam $beam, CTC weight $ctc_weight)"
  python -m speechkit.bin.decode --model $exp/model_avg.pt --cuts $data/cuts_test_seen.jsonl.gz \
    --out $exp/decode_test_seen --beam-size $beam --ctc-weight $ctc_weight
  python -m speechkit.bin.decode --model $exp/model_avg.pt --cuts $data/cuts_test_novel.jsonl.gz \
    --out $exp/decode_test_novel --beam-size $beam --ctc-weight $ctc_weight
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: score and write RESULTS.md"
  python -m speechkit.bin.score --decode-dir $exp/decode_test_seen --results-md $results \
    --title "$exp: test_seen (unseen speakers, sentences seen in training)" --command "$repro"
  python -m speechkit.bin.score --decode-dir $exp/decode_test_novel --results-md $results \
    --title "$exp: test_novel (unseen speakers, sentences never seen in training)" --command "$repro"
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: pack the model for the zoo in $exp/packed"
  python -m speechkit.bin.pack_model --checkpoint $exp/model_avg.pt --out $exp/packed
fi
if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  log "stage 7: padding fraction with and without bucketing -> $results"
  python -m speechkit.bench.padding --config $config --cuts $data/cuts_train.jsonl.gz --results-md $results
fi
log "done"
