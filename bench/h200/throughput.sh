#!/usr/bin/env bash
# Throughput table at Qwen3-8B shapes with dummy weights, on one H200, in one go:
# no speculation, SGLang's built-in DFLASH and ours, at SGLANG_SIMULATE_ACC_LEN 1 and 6.44,
# concurrency 1, 8, 32, 256 output tokens (ignore_eos).
#
# The five servers start side by side (each with a slice of GPU memory, so their ~1-2 min
# start-ups overlap) and are then measured one after another, so no two timings overlap.
# Needs: SGLang 0.5.17 importable (source /tmp/gpu-env.sh after staging the bundle) and this repo.
# Usage: bash bench/h200/throughput.sh OUTDIR [ATTENTION_BACKEND]
# Env: SERVERS (subset of the five names below), CONCURRENCY (1,8,32), NUM_PROMPTS (8),
#      MEM_FRACTION (0.16), STAGGER_S (0), STEP_TIMING (N: our servers log the per-step time
#      split every N decode steps, summarised into OUTDIR/step_split.json; off when unset)
set -uo pipefail
OUT=${1:?usage: throughput.sh OUTDIR [attention backend]}
BACKEND=${2:-triton}
cd "$(dirname "$0")/../.."
mkdir -p "$OUT/logs"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# our plugin is found through its entry point: install the package metadata (no deps, offline)
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 \
  || echo "warning: editable install failed; our plugin may not be registered"
python3 bench/h200/make_models.py /tmp/h200-models >/dev/null
T=/tmp/h200-models/qwen3-8b-dummy
D=/tmp/h200-models/dflash-b16-dummy
COMMON=(--model-path "$T" --load-format dummy --attention-backend "$BACKEND" --mem-fraction-static "${MEM_FRACTION:-0.16}"
        --host 127.0.0.1 --log-level info)
SPEC=(--speculative-algorithm DFLASH --speculative-draft-model-path "$D" --speculative-draft-load-format dummy
      --speculative-num-draft-tokens 16 --speculative-draft-attention-backend "$BACKEND")

declare -A PORT=([baseline]=31000 [builtin_acc1]=31001 [builtin_acc6.44]=31002 [ours_acc1]=31003 [ours_acc6.44]=31004)
start() {  # name impl acc
  local name=$1 impl=$2 acc=$3
  if [ "$impl" = none ]; then
    python3 -m sglang.launch_server "${COMMON[@]}" --port "${PORT[$name]}" >"$OUT/logs/$name.log" 2>&1 &
  else
    SGLANG_DFLASH_IMPL=$impl SGLANG_SIMULATE_ACC_LEN=$acc SGLANG_DFLASH_STEP_TIMING=${STEP_TIMING:-0} \
      python3 -m sglang.launch_server "${COMMON[@]}" "${SPEC[@]}" --port "${PORT[$name]}" >"$OUT/logs/$name.log" 2>&1 &
  fi
  echo "$!" >"$OUT/logs/$name.pid"
}
SERVERS=${SERVERS:-baseline builtin_acc1 builtin_acc6.44 ours_acc1 ours_acc6.44}
for name in $SERVERS; do
  case $name in
    baseline) start baseline none 0 ;;
    builtin_acc*) start "$name" builtin "${name#builtin_acc}" ;;
    ours_acc*) start "$name" sglang_dflash "${name#ours_acc}" ;;
  esac
  sleep "${STAGGER_S:-0}"
done

healthy() {  # url -> exit 0 when /health answers 200 (no curl needed)
  python3 -c "import sys,urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1]+'/health',timeout=3).status!=200)" "$1" 2>/dev/null
}
urls=()
for name in $SERVERS; do
  url="http://127.0.0.1:${PORT[$name]}"
  for _ in $(seq 1 240); do
    healthy "$url" && break
    kill -0 "$(cat "$OUT/logs/$name.pid")" 2>/dev/null || break
    sleep 2
  done
  if healthy "$url"; then
    echo "up: $name"; urls+=(--url "$name=$url")
  else
    echo "DOWN: $name"; tail -n 30 "$OUT/logs/$name.log"
  fi
done
grep -h "sglang-dflash worker started" "$OUT"/logs/*.log || echo "note: no sglang-dflash start line found"

python3 -m sglang_dflash.bench "${urls[@]}" --model "$T" --prompts mix --num-prompts "${NUM_PROMPTS:-8}" --max-tokens 256 \
  --concurrency "${CONCURRENCY:-1,8,32}" --warmup 2 --no-progress --out "$OUT" --tag qwen3-8b-dummy-h200-$BACKEND
rc=$?
if [ -n "${STEP_TIMING:-}" ]; then
  python3 -m sglang_dflash.bench.steptiming "$OUT"/logs/ours_*.log --out "$OUT/step_split.json" || true
fi
for pid in "$OUT"/logs/*.pid; do kill "$(cat "$pid")" 2>/dev/null; done
wait 2>/dev/null
exit $rc
