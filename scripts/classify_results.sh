#!/usr/bin/env bash
# The measured tables of docs/classify.md: `fedsb classify` on GNU Radio bursts recordings,
# scored against their truth.json by scripts/classify_score.py.
#   bash scripts/classify_results.sh RUN [OUT]     (needs Debian's gnuradio for /usr/bin/python3)
# RUN: a finished run, e.g. runs/own-data/finetune/full from scripts/own_data_results.sh.
# The validation recordings (seeds 100 and 101) chose the defaults; the test ones (200, 201)
# are only ever classified with them. "_unseen": the classes the model never saw (--classes
# extra). "true spans": the same recording with its truth as annotations (no detection).
set -euo pipefail
RUN=${1:?usage: classify_results.sh RUN [OUT]}
OUT=${2:-runs/classify}
FEDSB=${FEDSB:-.venv/bin/fedsb}
PY=${PY:-.venv/bin/python}
S=scripts/gnuradio_recordings.py
SCORE=scripts/classify_score.py

record() {  # NAME BURSTS SEED [more options]
    [ -f "$OUT/$1/truth.json" ] || /usr/bin/python3 $S bursts --out "$OUT/$1" --bursts "$2" \
        --seed "$3" "${@:4}" > /dev/null
}
record val 1000 100
record val_unseen 500 101 --classes extra
record test 1000 200
record test_unseen 500 201 --classes extra
rows=()
for r in val val_unseen test test_unseen val_spans test_spans; do
    truth="$OUT/${r%_spans}/truth.json"
    meta="$OUT/$r/bursts.sigmf-meta"
    [ "$r" = "${r%_spans}" ] || [ -f "$meta" ] || $PY $SCORE annotate "$truth" "$OUT/$r" > /dev/null
    labels="$OUT/labels/$r/bursts.fedsb.json"
    [ -f "$labels" ] || $FEDSB classify --run "$RUN" "$meta" --out "$OUT/labels/$r" > /dev/null
    $PY $SCORE "$truth" "$labels" --json "$OUT/$r.score.json" > /dev/null
    rows+=("${r/_spans/, true spans}=$OUT/$r.score.json")
done
$PY $SCORE table "${rows[@]}"
