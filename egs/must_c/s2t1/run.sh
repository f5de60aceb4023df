#!/usr/bin/env bash
# MuST-C English->German speech translation and English ASR (one OWSM-style E-Branchformer
# encoder-decoder with CTC, both tasks at once), sized for one GPU.
#   ./run.sh --data_root /path              # /path holds en-de/ (extracted from MuST-C's archive)
#   ./run.sh --data_root /path --language_pairs en-fr --data data/must_c_enfr --exp exp/s2t_enfr \
#            --train_args "--set data.st_directions=[eng-fra]"          # another pair
#   ./run.sh --init owsm-v3.1-ebf-base --config ../../../conf/s2t/owsm_finetune_must_c.yaml \
#            --exp exp/owsm_base_ft                                    # fine-tune OWSM (ST + ASR)
#   ./run.sh --init whisper-base --config ../../../conf/whisper/finetune_base_must_c.yaml \
#            --ctc_weight 0 --exp exp/whisper_base_ft     # Whisper: English ASR only (README.md)
#   ./run.sh --stage 5 --stop_stage 6 --test_set tst-HE
# Stages: 1 prepare MuST-C with lhotse's recipe, 2 tokenizer, 3 Shar shards (--shar true),
#         4 train, 5 decode $test_set (ST and ASR), 6 score -> RESULTS.md, 7 pack the model.
# Stages 1-4 skip work that is already done (training resumes from its newest checkpoint), so an
# interrupted run goes on where it stopped; decoding, scoring and packing run again.
# MuST-C cannot be downloaded by a script (a licence form comes first): --download true says where.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=7
data_root=downloads     # holds en-de/data/{train,dev,tst-COMMON,tst-HE}/{wav,txt}
download=false
language_pairs=en-de    # several: "en-de en-fr" (one manifest per split; set data.st_directions)
nj=4                    # processes / threads for corpus preparation and Shar export
config=../../../conf/s2t/must_c_ende.yaml
data=data/must_c_ende
exp=exp/s2t_ende
shar=false              # true: export the training cuts to Shar shards (stage 3) and train on them
shard_size=1000         # cuts per Shar shard
test_set=tst-COMMON     # or tst-HE
beam=10
ctc_weight=0.3          # CTC prefix scoring of the ASR output (ST is decoded without it)
results=RESULTS.md
train_args=""           # extra --set overrides, e.g. "--set trainer.max_epochs=50"
init=""                 # fine-tune a pretrained model (zoo name or path; skips stage 2)

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }
repro="cd egs/must_c/s2t1 && ./run.sh --data_root <MuST-C> --language_pairs '$language_pairs' --config $config --exp $exp --shar $shar --test_set $test_set --beam $beam --ctc_weight $ctc_weight${init:+ --init $init}${train_args:+ --train_args '$train_args'}"
train_data=$data/cuts_train.jsonl.gz
if [ "$shar" = true ]; then train_data=$data/shar_train; fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: prepare MuST-C $language_pairs (train, dev, tst-COMMON, tst-HE) in $data"
  python -m speechkit.bin.prepare_must_c --data-root "$data_root" --out $data \
    --language-pairs $language_pairs --download $download --num-jobs $nj
fi

if [ -z "$init" ] && [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: train the sentencepiece tokenizer (transcripts and translations)"
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
  log "stage 5: decode $test_set, each task the model learnt (beam $beam, CTC weight $ctc_weight)"
  python -m speechkit.bin.decode --model $exp/model_avg.pt \
    --cuts $data/cuts_${test_set//-/_}.jsonl.gz --out $exp/decode_$test_set \
    --beam-size $beam --ctc-weight $ctc_weight
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: score (BLEU/chrF for st_*, WER for asr_eng) and write $results"
  python -m speechkit.bin.score --decode-dir $exp/decode_$test_set --results-md $results \
    --title "$exp: $test_set" --command "$repro"
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  log "stage 7: pack the model in $exp/packed"
  python -m speechkit.bin.pack_model --checkpoint $exp/model_avg.pt --out $exp/packed
fi
log "done"
