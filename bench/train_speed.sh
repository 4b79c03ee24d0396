#!/usr/bin/env bash
# Training speed (issue 8), one GPU run, side by side: the reference stack (the classic tutorial's Trainer), the
# stock plain loop (transformers + peft + bitsandbytes, fused AdamW), and the engine's variants, on Phi-2 shapes
# (random weights) and the full DialogSum train split. Prints bench/speed_table.py's table last.
# Needs: CUDA, torch + transformers + peft, bitsandbytes on PYTHONPATH (.carry/site), the split in .carry/data
# (or BENCH_TRAIN / BENCH_VALIDATION).
# Usage: bench/train_speed.sh OUT_DIR [parts...]   parts: reference stock legacy-tutorial tutorial ... (engine_speed.py)
#        with no parts: the acceptance run of issue 8 (the tutorial's 1000 steps with today's defaults, packed rows,
#        the 22 GiB cap), ~8 minutes on an H200; each part is cut at PART_TIMEOUT seconds (default 200)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?output folder}; shift
parts=${*:-reference stock tutorial-defaults packed-defaults packed-22GiB}
limit=${PART_TIMEOUT:-200}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/.carry/site:$PWD/engine:${PYTHONPATH:-}"
train=${BENCH_TRAIN:-.carry/data/dialogsum.train.jsonl}
validation=${BENCH_VALIDATION:-.carry/data/dialogsum.dev.jsonl}
model=${BENCH_MODEL:-/tmp/phi2-random}
mkdir -p "$out"
[ -d "$model" ] || python3 bench/make_random_model.py --shape phi-2 --out "$model" >/dev/null
for part in $parts; do
  echo "== $part $(date +%T)"
  case $part in
    reference) timeout "$limit" python3 bench/reference_stack.py --model "$model" --train "$train" --validation "$validation" \
                 --sampling random --max-steps 20 --logging-steps 5 >"$out/$part.json" 2>"$out/$part.log" ;;
    stock) for args in "--batch 4 --seq 2048" "--batch 8 --seq 2048 --checkpointing"; do
             timeout "$limit" python3 bench/stock_loop.py "$model" $args >>"$out/$part.json" 2>>"$out/$part.log"; done ;;
    *) timeout "$limit" python3 bench/engine_speed.py --model "$model" --train "$train" --validation "$validation" --variant "$part" \
         ${ENGINE_ARGS:-} >"$out/$part.json" 2>"$out/$part.log" ;;
  esac
  echo "exit $?"; grep -v "Loading weights" "$out/$part.log" | tail -2 | cut -c1-300
done
python3 bench/speed_table.py "$out"/*.json | tee "$out/table-$(date +%H%M%S).md"
