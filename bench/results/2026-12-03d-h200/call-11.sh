#!/usr/bin/env bash
# issue 11: one-row products as Inductor-generated matvecs (coordinate descent): parity at batch 1/16, speed, profile
exec > >(tee $OUT/log.txt) 2>&1
cd "$(dirname "$0")/.."
T0=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export PYTHONPATH="$PWD/.carry/site:$PWD/engine" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 samples/models/make_tiny_phi.py >/dev/null 2>&1
[ -d /tmp/phi2-random ] || python3 bench/make_random_model.py --shape phi-2 --out /tmp/phi2-random >/dev/null 2>&1; echo "model $? t=$((SECONDS-T0))"
B=/tmp/gen
BATCHES=1 timeout 150 bench/generate_speed.sh $B reference
echo "t=$((SECONDS-T0))"
BATCHES=1,16,64 timeout 150 bench/generate_speed.sh $B engine
echo "t=$((SECONDS-T0))"
tar czf $OUT/gen.tgz -C /tmp gen
timeout $((560-SECONDS+T0)) python3 bench/profile_decode.py --model /tmp/phi2-random --variants compiled,cublas --batches 1,16 2>&1 | grep -v "Loading weights\|clean_up\|_warn_once\|UserWarning"
echo "t=$((SECONDS-T0))"
