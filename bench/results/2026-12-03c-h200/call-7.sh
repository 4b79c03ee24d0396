#!/usr/bin/env bash
# issue 11: compiled decoder layers (one compile shared by all layers) on by default: GPU decode test, speed, warm cache
exec > >(tee $OUT/log.txt) 2>&1
cd "$(dirname "$0")/.."
T0=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export PYTHONPATH="$PWD/.carry/site:$PWD/engine" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 samples/models/make_tiny_phi.py >/dev/null 2>&1; echo "tiny $? $(date +%T)"
[ -d /tmp/phi2-random ] || python3 bench/make_random_model.py --shape phi-2 --out /tmp/phi2-random >/dev/null 2>&1; echo "model $? $(date +%T)" 
[ -n "${GPU_TEST:-}" ] && (cd engine && timeout 170 python3 -m pytest -q -m gpu -x -p no:cacheprovider tests/test_gpu.py -k decode_graphs 2>&1 | grep -v "^DEBUG\|^$" | grep -v "Loading weights" | tail -25)
echo "test $(date +%T) t=$((SECONDS-T0))" 
B=/tmp/gen
BATCHES=1,16,64 bench/generate_speed.sh $B engine engine-uncompiled
echo "t=$((SECONDS-T0))"
[ $((SECONDS-T0)) -lt 470 ] && BATCHES=1,16,64 timeout 90 bench/generate_speed.sh $B/warm engine
echo "t=$((SECONDS-T0))"
grep -h "first_call_s\|time_to_first" $B/*.json $B/warm/*.json 2>/dev/null | cut -c1-420
tar czf $OUT/gen.tgz -C /tmp gen
