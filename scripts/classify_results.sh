#!/usr/bin/env bash
# The measured tables of docs/classify.md: `fedsb classify` on GNU Radio bursts recordings,
# scored against their truth.json by scripts/classify_score.py.
#   bash scripts/classify_results.sh RUN [OUT]     (needs Debian's gnuradio for /usr/bin/python3)
# RUN: a finished run, e.g. runs/own-data/finetune/full from scripts/own_data_results.sh.
# The validation recordings (seeds 100 and 101) chose the defaults; the test ones (200, 201)
# are only ever classified with them. "_unseen": the classes the model never saw (--classes
# extra). "true spans": the same recording with its truth as annotations (no detection).
# LABELS=name keeps another run's labels apart (same recordings); BEFORE=1 also classifies
# the test recordings as the previous defaults did (whole-band detection only, windows side
# by side, unknown below confidence 0.5 alone).
set -euo pipefail
RUN=${1:?usage: classify_results.sh RUN [OUT]}
OUT=${2:-runs/classify}
FEDSB=${FEDSB:-.venv/bin/fedsb}
PY=${PY:-.venv/bin/python}
S=scripts/gnuradio_recordings.py
SCORE=scripts/classify_score.py
L=${LABELS:-labels}

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
    labels="$OUT/$L/$r/bursts.fedsb.json"
    [ -f "$labels" ] || $FEDSB classify --run "$RUN" "$meta" --out "$OUT/$L/$r" > /dev/null
    $PY $SCORE "$truth" "$labels" --json "$OUT/$L/$r.score.json" > /dev/null
    rows+=("${r/_spans/, true spans}=$OUT/$L/$r.score.json")
done
if [ "${BEFORE:-0}" = 1 ]; then
    for r in test test_unseen; do
        labels="$OUT/$L/before_$r/bursts.fedsb.json"
        [ -f "$labels" ] || $PY - "$RUN" "$OUT/$r/bursts.sigmf-meta" "$OUT/$L/before_$r" <<'EOF2'
import sys
from pathlib import Path
from fedsb.evaluation.classify import ClassifyConfig
from fedsb.evaluation.classify_run import ClassifyOptions, classify_files
from fedsb.signals.bursts import BurstConfig
before = ClassifyConfig(overlap=0.0, detect=BurstConfig(band_sigmas=0.0, reach=0))
options = ClassifyOptions(min_confidence=0.5, min_energy=-1e9, config=before)
classify_files(Path(sys.argv[1]), [Path(sys.argv[2])], Path(sys.argv[3]), options)
EOF2
        $PY $SCORE "$OUT/$r/truth.json" "$labels" --json "$OUT/$L/before_$r.score.json" > /dev/null
        rows+=("$r, before=$OUT/$L/before_$r.score.json")
    done
fi
$PY $SCORE table "${rows[@]}"
