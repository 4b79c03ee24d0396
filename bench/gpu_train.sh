#!/usr/bin/env bash
# GPU benchmark, part 1 (training): the reference stack and QLoRA Studio's engine on the same data, in one run.
# Needs: a CUDA machine with torch + transformers + peft; bitsandbytes on PYTHONPATH (e.g. .carry/site).
# Usage: bench/gpu_train.sh OUT_DIR [variants...]   (variants: reference tutorial defaults learn)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?output folder}; shift
variants=${*:-reference tutorial defaults learn}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/.carry/site:$PWD/engine:${PYTHONPATH:-}"
train=${BENCH_TRAIN:-samples/dialogsum/train.jsonl}
validation=${BENCH_VALIDATION:-samples/dialogsum/validation.jsonl}
mkdir -p "$out"
python3 - <<'PY' | tee "$out/env.txt"
import torch, transformers, peft, bitsandbytes
print(f"card={torch.cuda.get_device_name(0)} torch={torch.__version__} transformers={transformers.__version__} "
      f"peft={peft.__version__} bitsandbytes={bitsandbytes.__version__}")
PY
[ -d /tmp/phi2-random ] || python3 bench/make_random_model.py --shape phi-2 --out /tmp/phi2-random
for v in $variants; do
  echo "== $v $(date +%T)"
  case $v in
    reference) python3 bench/reference_stack.py --model /tmp/phi2-random --train "$train" --validation "$validation" --sampling random \
                 --max-steps 30 >"$out/$v.json" 2>"$out/$v.log" ;;
    learn) [ -d /tmp/small-random ] || python3 bench/make_random_model.py --shape small --out /tmp/small-random
           python3 bench/engine_stack.py --model /tmp/small-random --variant learn --max-steps 150 \
             --train "$train" --validation "$validation" >"$out/$v.json" 2>"$out/$v.log" ;;
    *) python3 bench/engine_stack.py --model /tmp/phi2-random --variant "$v" --max-steps 30 \
         --train "$train" --validation "$validation" >"$out/$v.json" 2>"$out/$v.log" ;;
  esac
  echo "exit $?"; tail -3 "$out/$v.log"
done
python3 bench/report.py "$out"/*.json | tee "$out/table.md"
