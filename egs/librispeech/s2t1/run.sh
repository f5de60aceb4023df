#!/usr/bin/env bash
# LibriSpeech ASR (OWSM-style E-Branchformer encoder-decoder with CTC), sized for one GPU.
#   ./run.sh --data_root /path              # /path holds LibriSpeech/ (or is it); 100 h subset
#   ./run.sh --data_root /path --download true        # fetch the missing parts first (OpenSLR 12)
#   ./run.sh --data_root /path --train_parts "train-clean-100 train-clean-360 train-other-500" \
#            --data data/librispeech_960h --exp exp/s2t_960h    # 960 h (same model; a larger one
#                                                               # is a config: --config ...)
#   ./run.sh --shar true                    # train from Shar shards (sequential reads)
#   ./run.sh --stage 4 --stop_stage 5
# Stages: 1 prepare the corpus with lhotse's recipe, 2 tokenizer, 3 Shar shards (--shar true),
#         4 train, 5 decode test-clean and test-other, 6 score -> RESULTS.md, 7 pack the model.
# Stages 1-4 skip work that is already done (training resumes from its newest checkpoint), so an
# interrupted run goes on where it stopped; decoding, scoring and packing run again.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=7
data_root=downloads     # holds LibriSpeech/<part>/...; --download true extracts the parts here
download=false
train_parts=train-clean-100
nj=4                    # threads / processes for corpus preparation and Shar export
config=../../../conf/s2t/librispeech_100h.yaml
data=data/librispeech
exp=exp/s2t_100h
shar=false              # true: export the training cuts to Shar shards (stage 3) and train on them
shard_size=1000         # cuts per Shar shard
beam=10
ctc_weight=0.3
results=RESULTS.md
train_args=""           # extra --set overrides, e.g. "--set trainer.max_epochs=35"
init=""                 # fine-tune a pretrained s2t model (zoo name or path; skips stage 2),
                        # e.g. --init owsm-v3.1-ebf-base --config ../../../conf/s2t/owsm_finetune_librispeech.yaml

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }
repro="cd egs/librispeech/s2t1 && ./run.sh --data_root <LibriSpeech> --train_parts '$train_parts' --config $config --exp $exp --shar $shar --beam $beam --ctc_weight $ctc_weight${init:+ --init $init}${train_args:+ --train_args '$train_args'}"
train_data=$data/cuts_train.jsonl.gz
if [ "$shar" = true ]; then train_data=$data/shar_train; fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: prepare LibriSpeech ($train_parts; dev-clean, dev-other, test-clean, test-other) in $data"
  python -m speechkit.bin.prepare_librispeech --data-root "$data_root" --out $data \
    --train-parts $train_parts --download $download --num-jobs $nj
fi

if [ -z "$init" ] && [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: train the sentencepiece tokenizer"
  python -m speechkit.bin.train_tokenizer --config $config --cuts $data/cuts_train.jsonl.gz \
    --out $data/tokenizer
fi

if [ "$shar" = true ] && [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "stage 3: export the training cuts to Shar shards in $train_data"
  python -m speechkit.bin.export_shar --cuts $data/cuts_train.jsonl.gz --out $train_data \
    --shard-size $shard_size --num-jobs $nj
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "stage 4: train $exp"
  python -m speechkit.bin.train --config $config --train-cuts $train_data \
    --dev-cuts $data/cuts_dev.jsonl.gz --tokenizer $data/tokenizer --out $exp --resume \
    $train_args ${init:+--init $init}
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: decode test-clean and test-other (beam $beam, CTC weight $ctc_weight)"
  python -m speechkit.bin.decode --model $exp/model_avg.pt --cuts $data/cuts_test_clean.jsonl.gz \
    --out $exp/decode_test_clean --beam-size $beam --ctc-weight $ctc_weight
  python -m speechkit.bin.decode --model $exp/model_avg.pt --cuts $data/cuts_test_other.jsonl.gz \
    --out $exp/decode_test_other --beam-size $beam --ctc-weight $ctc_weight
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: score and write $results"
  python -m speechkit.bin.score --decode-dir $exp/decode_test_clean --results-md $results \
    --title "$exp: test-clean" --command "$repro"
  python -m speechkit.bin.score --decode-dir $exp/decode_test_other --results-md $results \
    --title "$exp: test-other" --command "$repro"
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  log "stage 7: pack the model in $exp/packed"
  python -m speechkit.bin.pack_model --checkpoint $exp/model_avg.pt --out $exp/packed
fi
log "done"
