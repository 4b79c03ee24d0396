#!/usr/bin/env bash
# Generation speed (issue 11), one GPU run, side by side: the reference stack's generate (dynamic cache, then
# transformers' static cache, which it compiles), the engine's generate (static cache + CUDA-graph steps) and, for
# what the graphs buy, the engine without graphs; then `qlora-studio eval` on DialogSum's whole test split (500
# records, base and adapter, up to 100 new tokens, batch 64) through the CLI. Phi-2 shapes, random weights.
# Needs: CUDA, torch + transformers + peft, bitsandbytes on PYTHONPATH (.carry/site), node (.carry/node/node.xz or
# on PATH) and a built dist/, the test split in .carry/data (or BENCH_TEST).
# Usage: bench/generate_speed.sh OUT_DIR [parts...]   parts: reference reference-static engine engine-uncompiled
#        engine-cublas engine-wide-cublas engine-unmerged engine-4bit engine-no-graphs eval   (BATCHES=1,16,64 for the engine and reference stacks)
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?output folder}"); shift
parts=${*:-reference engine reference-static engine-no-graphs eval}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/.carry/site:$PWD/engine:${PYTHONPATH:-}"
test_split=$(realpath "${BENCH_TEST:-.carry/data/dialogsum.test.jsonl}")
model=${BENCH_MODEL:-/tmp/phi2-random}
mkdir -p "$out"
[ -d "$model" ] || python3 bench/make_random_model.py --shape phi-2 --out "$model" >/dev/null
for part in $parts; do
  echo "== $part $(date +%T)"
  case $part in
    reference-static) timeout 300 python3 bench/generate_bench.py --stack "$part" --model "$model" --data "$test_split" --parity 0 \
                        --batches ${STATIC_BATCHES:-1,16} --repeats 2 --out "$out" >"$out/$part.json" 2>"$out/$part.log" ;;
    eval)
      node=$(command -v node || true)
      if [ -z "$node" ] && [ -f .carry/node/node.xz ]; then xz -dc .carry/node/node.xz >/tmp/node && chmod +x /tmp/node; node=/tmp/node; fi
      cat >"$out/eval-phi2.yaml" <<YAML
model: $model
quantization: nf4
double_quant: false
compute_dtype: float16
lora: { r: 32, alpha: 32, dropout: 0.05, target_modules: [q_proj, k_proj, v_proj, dense] }
data: { train: $test_split, test: $test_split }
template: $PWD/samples/dialogsum/summarize.prompt.yaml
max_length: 2048
eval: { max_new_tokens: 100, batch_size: 64 }
YAML
      start=$(python3 -c 'import time; print(time.time())')
      timeout 400 "$node" dist/cli.js eval "$out/eval-phi2.yaml" --adapter /tmp/bench-adapter --python python3 \
        --out "$out/eval" --json >"$out/eval.jsonl" 2>"$out/eval.log"
      python3 -c "
import json, time; r = json.load(open('$out/eval/report.json'))
print(json.dumps({'stack': 'qlora-studio eval', 'wall_s': round(time.time() - $start, 1), 'records': r['count'],
                  'seconds': r['seconds'], 'generating': r.get('generating'), 'loading': r.get('loading')}))" >"$out/eval.json" ;;
    *) timeout 300 python3 bench/generate_bench.py --stack "$part" --model "$model" --data "$test_split" --out "$out" \
         --batches "${BATCHES:-1,16,64}" \
         >"$out/$part.json" 2>"$out/$part.log" ;;
  esac
  echo "exit $?"; grep -v "Loading weights" "$out/$part.log" 2>/dev/null | grep -i "error\|warn" | sort | uniq -c | head -4 | cut -c1-300
  cat "$out/$part.json" 2>/dev/null | cut -c1-400
done
