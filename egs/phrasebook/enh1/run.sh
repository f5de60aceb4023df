#!/usr/bin/env bash
# Phrasebook separation front end: query-conditioned extraction (class, text, enrolled speaker),
# trained supervised and from weak clip labels (USS-style), judged by SI-SDRi and by Whisper.
#   ./run.sh                          # all stages (2 CPU cores: about 55 minutes, estimated)
#   ./run.sh --stage 4 --stop_stage 6
# Stages: 1 corpus, 2 mixtures (sources kept) and speech-free background clips (clip labels
#         only, as AudioSet has them), 3 event tagger, 4 anchors from clip labels,
#         5 separator, supervised arm, and asteroid's Conv-TasNet baseline on the same mixtures
#         and budget, 6 separator, weak arm, 7 evaluation (with the oracle-mask ceiling) ->
#         RESULTS.md, 8 a 10-minute file through `speechkit separate` (RTF, peak memory) ->
#         RESULTS.md, 9 the s2t1 model's WER and BLEU on English at -5..0 dB and on the same
#         speech clean, with and without the front end -> RESULTS.md.
# Needs the separation extra: pip install -e '.[separation]' (tools/setup.sh installs .[dev]);
# the baseline needs asteroid: pip install --no-deps asteroid asteroid-filterbanks (its pinned
# torchmetrics conflicts; none of its dependencies is needed), or --baseline_config "" skips it.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh

stage=1
stop_stage=9
hours=1.0          # phrasebook corpus size (only its `clean` utterances become mixture targets)
nj=2
seed=0
corpus=data/phrasebook
mixtures=data/mixtures
wer_mixtures=data/mixtures_wer   # speech in backgrounds at -5..0 dB only, for the downstream WER
per_utterance=train=4,dev=2,test=5
background_clips=100   # speech-free clips per background class, clip labels only (0: none)
backgrounds=data/backgrounds
anchor_min_score=0.5   # drop anchors whose tagger margin is below this (-1: keep all; RESULTS.md)
conf=../../../conf/separation
sup_config=$conf/tfnet_supervised.yaml    # *_gpu.yaml for a GPU run
weak_config=$conf/tfnet_weak.yaml
baseline_config=$conf/convtasnet_baseline.yaml   # "" skips the Conv-TasNet baseline
exp=exp
wer_model=whisper-tiny.en   # "" skips the downstream WER
wer_remix=0        # shares of the mixture added back to the front end's output, e.g. "0 0.3"
s2t_model=../s2t1/exp/s2t_tiny/model_avg.pt   # stage 9's recogniser (run ../s2t1 first; "" skips)
results=RESULTS.md

. "$SPEECHKIT_ROOT/tools/parse_options.sh" "$@"

log() { echo "[$(date '+%H:%M:%S')] (run.sh) $*"; }

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: phrasebook corpus ($hours h) in $corpus"
  python -m speechkit.bin.prepare_phrasebook --out $corpus --hours $hours --seed $seed \
    --num-jobs $nj --language-weights eng=3 --snr-min 5 --snr-max 20
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: mixtures with their sources, SNR -5..15 dB, in $mixtures"
  python -m speechkit.bin.prepare_mixtures --corpus $corpus --out $mixtures \
    --per-utterance $per_utterance --snr-min -5 --snr-max 15 --seed $seed
  if [ "$background_clips" -gt 0 ]; then
    log "stage 2: $background_clips speech-free clips per background class (weak labels) in $backgrounds"
    python -m speechkit.bin.prepare_background_clips --corpus $corpus --out $backgrounds \
      --per-class $background_clips --seed $seed
  fi
  log "stage 2: background mixtures at -5..0 dB for the downstream WER, in $wer_mixtures"
  python -m speechkit.bin.prepare_mixtures --corpus $corpus --out $wer_mixtures \
    --per-utterance test=5 --snr-min -5 --snr-max 0 --speaker-share 0 --seed $((seed + 1))
fi
weak_clips=$corpus/cuts_train.jsonl.gz
if [ "$background_clips" -gt 0 ]; then weak_clips="$weak_clips $backgrounds/cuts_train.jsonl.gz"; fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "stage 3: event tagger on the clip labels of $weak_clips"
  python -m speechkit.bin.train --config $conf/tagger.yaml --train-cuts $weak_clips \
    --dev-cuts $corpus/cuts_dev.jsonl.gz --out $exp/tagger --resume
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "stage 4: anchor segments of the weakly labelled training clips"
  mkdir -p data/anchors
  python -m speechkit.bin.mine_anchors --tagger $exp/tagger --cuts $weak_clips \
    --out data/anchors/cuts_train.jsonl.gz --window-s 1.0 --min-score $anchor_min_score
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: separator, supervised arm (mixtures with sources)"
  python -m speechkit.bin.train --config $sup_config --train-cuts $mixtures/cuts_train.jsonl.gz \
    --dev-cuts $mixtures/cuts_dev.jsonl.gz --out $exp/sep_supervised --resume
  if [ -n "$baseline_config" ]; then
    log "stage 5: asteroid Conv-TasNet baseline (same mixtures, same budget)"
    python -m speechkit.bin.train --config $baseline_config --train-cuts $mixtures/cuts_train.jsonl.gz \
      --dev-cuts $mixtures/cuts_dev.jsonl.gz --out $exp/convtasnet --resume
  fi
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  log "stage 6: separator, weak arm (anchors from clip labels; no clean source)"
  python -m speechkit.bin.train --config $weak_config --train-cuts data/anchors/cuts_train.jsonl.gz \
    --dev-cuts $mixtures/cuts_dev.jsonl.gz --out $exp/sep_weak --resume
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  log "stage 7: SI-SDRi by query and SNR band, spectrograms, downstream WER -> $results"
  python -m speechkit.bench.separation --model supervised=$exp/sep_supervised \
    --model weak=$exp/sep_weak ${baseline_config:+--model convtasnet=$exp/convtasnet} \
    --cuts $mixtures/cuts_test.jsonl.gz --figures figures --oracle irm --oracle psm \
    ${wer_model:+--wer-model $wer_model --wer-cuts $wer_mixtures/cuts_test.jsonl.gz} \
    ${wer_model:+--wer-max 200 --wer-beam 5 --wer-remix $wer_remix} --results-md $results
fi

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  log "stage 8: a 10-minute recording through speechkit separate (bounded memory)"
  python -m speechkit.bench.separation_long --model $exp/sep_supervised --minutes 10 \
    --cuts $mixtures/cuts_test.jsonl.gz --work data/long --results-md $results
fi
if [ $stage -le 9 ] && [ $stop_stage -ge 9 ] && [ -n "$s2t_model" ]; then
  if [ ! -e "$s2t_model" ]; then
    log "stage 9: skipped, no $s2t_model: run ../s2t1/run.sh first, or give --s2t_model"
  else
    log "stage 9: $s2t_model on $wer_mixtures, noisy and clean, with and without the front end"
    for cond in noisy clean; do
      cuts=$wer_mixtures/cuts_test.jsonl.gz
      if [ $cond = clean ]; then cuts=$wer_mixtures/cuts_test_speech.jsonl.gz; fi
      python -m speechkit.bin.decode --model $s2t_model --cuts $cuts --languages eng \
        --beam-size 5 --ctc-weight 0.3 --out $exp/s2t_decode/${cond}
      python -m speechkit.bin.decode --model $s2t_model --cuts $cuts --languages eng \
        --beam-size 5 --ctc-weight 0.3 --frontend $exp/sep_supervised \
        --out $exp/s2t_decode/${cond}_frontend
      for dir in ${cond} ${cond}_frontend; do
        python -m speechkit.bin.score --decode-dir $exp/s2t_decode/$dir --results-md $results \
          --title "Downstream: s2t1 model, English of $wer_mixtures, $dir"
      done
    done
  fi
fi
log "done"
