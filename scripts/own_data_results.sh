#!/usr/bin/env bash
# The own-data table of docs/results.md: GNU Radio recordings (three sites, and two independent
# test recordings), fine-tuned centralized and federated through the CLI, then scored on both.
#   bash scripts/own_data_results.sh OUT      (needs Debian's gnuradio for /usr/bin/python3)
#   BURSTS=300: three times the sites' bursts; THREADS=1: one torch thread (0: every core)
#   BACKBONE=narrow: the narrow backbone the first own-data table was measured with
set -euo pipefail
OUT=${1:-runs/own-data}
FEDSB=${FEDSB:-.venv/bin/fedsb}
CACHE=${CACHE:-.cache/fedsb}
BURSTS=${BURSTS:-100}
THREADS=${THREADS:-0}
S=scripts/gnuradio_recordings.py
mkdir -p "$OUT"
[ -d "$OUT/gr/sites" ] || /usr/bin/python3 $S sites --out "$OUT/gr/sites" --sites 3 \
    --bursts-per-class "$BURSTS" --length 1024 --snr -10:20 --seed 0
[ -d "$OUT/gr/test" ] || /usr/bin/python3 $S test --out "$OUT/gr/test" --bursts-per-class 30 --seed 0
# a second, larger test recording (its own seed): 1,197 windows at >= 10 dB, not 298
[ -d "$OUT/gr/test-large" ] || /usr/bin/python3 $S test --out "$OUT/gr/test-large" \
    --bursts-per-class 100 --seed 1
DATA=(--data "$OUT/gr/sites" --test-data "$OUT/gr/test" --cache "$CACHE")
# the narrow backbone (the default until the transfer measurements), the records as they are
if [ "${BACKBONE:-}" = narrow ]; then
    DATA+=(--set "pretrained='pretrain'" --set data.images.frontend.recentre=false
           --set data.images.frontend.resample=false --set data.images.frontend.gate=false)
fi
# centralized: LoRA-SB r = 16 and full fine-tuning of the default pretrained backbone
[ -f "$OUT/finetune/lora-sb/model.safetensors" ] || $FEDSB finetune "${DATA[@]}" \
    --method lora-sb,full --set train.threads="$THREADS" --out "$OUT/finetune"
# federated: 10 clients, Dirichlet(0.5) label skew over the files, fedsb and the pooled reference
# (the narrow backbone's table also gave each client an SNR window, the preset's snr_skew)
SKEW=(--set partition.dirichlet_alpha=0.5 --set threads="$THREADS")
[ "${BACKBONE:-}" = narrow ] || SKEW+=(--set partition.snr_skew=false)
[ -f "$OUT/federated/fedsb/model.safetensors" ] || \
    $FEDSB run "${DATA[@]}" --clients 10 "${SKEW[@]}" \
        --method fedsb,centralized --out "$OUT/federated"
# federated: one client per site (core:hw), the data's own heterogeneity
[ -f "$OUT/sites/model.safetensors" ] || $FEDSB run "${DATA[@]}" --partition-by core:hw \
    --set server.min_clients=2 --set threads="$THREADS" --out "$OUT/sites"
# every model on the larger test recording (eval-large.json in its run directory)
for run in finetune/lora-sb finetune/full federated/fedsb federated/centralized sites; do
    [ -f "$OUT/$run/eval-large.json" ] || $FEDSB evaluate --run "$OUT/$run" \
        --data "$OUT/gr/test-large" --out "$OUT/$run/eval-large.json"
done
