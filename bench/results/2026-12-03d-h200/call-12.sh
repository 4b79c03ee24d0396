#!/usr/bin/env bash
# issue 11: matvec vs cuBLAS at one row, tuned only at one row; compiled prefill; where a batch-1 token's time goes
exec > >(tee $OUT/log.txt) 2>&1
cd "$(dirname "$0")/.."
T0=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export PYTHONPATH="$PWD/.carry/site:$PWD/engine" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 samples/models/make_tiny_phi.py >/dev/null 2>&1
[ -d /tmp/phi2-random ] || python3 bench/make_random_model.py --shape phi-2 --out /tmp/phi2-random >/dev/null 2>&1; echo "model $? t=$((SECONDS-T0))"
B=/tmp/gen
BATCHES=1,16 timeout 120 bench/generate_speed.sh $B engine engine-cublas
echo "t=$((SECONDS-T0))"
tar czf $OUT/gen.tgz -C /tmp gen
timeout $((570-SECONDS+T0)) python3 bench/profile_decode.py --model /tmp/phi2-random --variants compiled,cublas,prefill --batches 1,16 2>&1 | grep -v "Loading weights\|clean_up\|_warn_once\|UserWarning"
echo "t=$((SECONDS-T0))"
