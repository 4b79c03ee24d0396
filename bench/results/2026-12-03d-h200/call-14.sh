#!/usr/bin/env bash
# issue 11 follow-up (check, engine variants only): fc1 (wider out than in) on cuBLAS, the rest as decode.matvec
exec > >(tee $OUT/log.txt) 2>&1
cd "$(dirname "$0")/.."
T0=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export PYTHONPATH="$PWD/.carry/site:$PWD/engine" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
[ -d /tmp/phi2-random ] || python3 bench/make_random_model.py --shape phi-2 --out /tmp/phi2-random >/dev/null 2>&1; echo "model $? t=$((SECONDS-T0))"
B=/tmp/gen
BATCHES=1 timeout 80 bench/generate_speed.sh $B engine-wide-cublas
echo "t=$((SECONDS-T0))"
BATCHES=1 timeout 80 bench/generate_speed.sh $B engine
echo "t=$((SECONDS-T0))"
tar czf $OUT/gen.tgz -C /tmp gen
