#!/usr/bin/env bash
# issue 11 acceptance: reference (dynamic cache, static cache) and engine side by side at batch 1/16/64, the 500-record CLI eval
exec > >(tee $OUT/log.txt) 2>&1
cd "$(dirname "$0")/.."
T0=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export PYTHONPATH="$PWD/.carry/site:$PWD/engine" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 samples/models/make_tiny_phi.py >/dev/null 2>&1
[ -d /tmp/phi2-random ] || python3 bench/make_random_model.py --shape phi-2 --out /tmp/phi2-random >/dev/null 2>&1; echo "model $? t=$((SECONDS-T0))"
B=/tmp/gen
BATCHES=1,16,64 bench/generate_speed.sh $B reference engine eval
echo "t=$((SECONDS-T0))"
tar czf $OUT/gen.tgz -C /tmp gen
STATIC_BATCHES=1,16,64 timeout $((575-SECONDS+T0)) bench/generate_speed.sh $B reference-static
echo "t=$((SECONDS-T0))"
tar czf $OUT/gen.tgz -C /tmp gen
[ $((SECONDS-T0)) -lt 500 ] && BATCHES=1 timeout $((585-SECONDS+T0)) bench/generate_speed.sh $B engine-cublas
echo "t=$((SECONDS-T0))"
tar czf $OUT/gen.tgz -C /tmp gen
