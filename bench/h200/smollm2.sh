#!/usr/bin/env bash
# The real SmolLM2-135M-Instruct pair on one H200 in ONE call of <= 300 s (issue #6, item 3b):
# per-task acceptance (sglang_dflash.eval, the z-lab-like task mix, greedy, through each server)
# and throughput (sglang_dflash.bench, c = 1, 8, 32, 256 output tokens, natural stop) for
# no speculation, SGLang's built-in DFLASH and ours, at --speculative-num-draft-tokens 8 and 16,
# triton attention, bf16.
#
# All servers start side by side (KV capped by --max-total-tokens: the model is 135M), then are
# measured one after another, block 8 first; a step that would pass its deadline is skipped.
# Needs: source /tmp/gpu-env.sh (SGLang 0.5.17), export SGLANG_DFLASH_SMOLLM2_GGUF=/tmp/smol.gguf.
# Usage: bash bench/h200/smollm2.sh OUTDIR [DRAFTER_DIR]
#   env: BLOCKS ("8 16"), BACKEND (triton), MEM_FRACTION (0.3), EVAL_PROMPTS (10), BENCH_PROMPTS (8),
#        MAX_TOKENS (256), CONCURRENCY (1,8,32), END_S (285), DRY_RUN=1 (CPU harness, tiny)
set -uo pipefail
OUT=${1:?usage: smollm2.sh OUTDIR [drafter dir]}
cd "$(dirname "$0")/../.."
REPO=$PWD
DRAFTER=$(cd "${2:-sglang_dflash/assets/smollm2-drafter}" && pwd)
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=${PYTHON:-python3}
T0=$(date +%s)
now() { echo $(( $(date +%s) - T0 )); }
log() { echo "[$(now)s] $*"; }
BLOCKS=${BLOCKS:-8 16}; BACKEND=${BACKEND:-triton}; END_S=${END_S:-285}
EVAL_PROMPTS=${EVAL_PROMPTS:-10}; BENCH_PROMPTS=${BENCH_PROMPTS:-8}; MAX_TOKENS=${MAX_TOKENS:-256}
CONCURRENCY=${CONCURRENCY:-1,8,32}
if [ "${DRY_RUN:-0}" = 1 ]; then
  export SGLANG_USE_CPU_ENGINE=1 PYTHONPATH="$REPO/tests/cpu_sglang/stubs:$PYTHONPATH"
  DEV=(--device cpu --attention-backend torch_native --dtype float32 --max-total-tokens 8192)
  SPEC_BACKEND=torch_native
else
  # the KV pool is capped by --max-total-tokens; the fraction is SGLang's start-up accounting,
  # which fails a server whose free memory drops by more than that share while it loads
  # (servers starting side by side); no prefill graph (as in throughput.sh, for every config)
  DEV=(--attention-backend "$BACKEND" --dtype bfloat16 --mem-fraction-static "${MEM_FRACTION:-0.3}"
       --max-total-tokens 131072 --disable-prefill-cuda-graph)
  SPEC_BACKEND=$BACKEND
  # our plugin is found through its entry point: install the package metadata (no deps, offline)
  "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 \
    || echo "warning: editable install failed; our plugin may not be registered"
fi

T=${SGLANG_DFLASH_SMOLLM2_DIR:-/tmp/smollm2-hf-$$}
"$PY" -m sglang_dflash.smollm2 --out "$T" >"$OUT/logs/convert.log" 2>&1 || { tail "$OUT/logs/convert.log"; exit 1; }
log "target converted: $T"

declare -A PORT PIDS
NAMES=(baseline)
p=31100
PORT[baseline]=$p
for b in $BLOCKS; do for impl in ours builtin; do NAMES+=("${impl}_b$b"); p=$((p + 1)); PORT[${impl}_b$b]=$p; done; done
COMMON=(--model-path "$T" "${DEV[@]}" --host 127.0.0.1 --log-level info)
cmds="$OUT/commands.txt"; : >"$cmds"
for name in "${NAMES[@]}"; do
  args=("${COMMON[@]}" --port "${PORT[$name]}")
  envs=()
  if [ "$name" != baseline ]; then
    b=${name##*_b}; impl=${name%_b*}
    args+=(--speculative-algorithm DFLASH --speculative-draft-model-path "$DRAFTER" --speculative-num-draft-tokens "$b"
           --speculative-draft-attention-backend "$SPEC_BACKEND")
    [ "$impl" = builtin ] && envs=(SGLANG_DFLASH_IMPL=builtin)
  fi
  echo "$name: ${envs[*]} $PY -m sglang.launch_server ${args[*]}" >>"$cmds"
  setsid env "${envs[@]}" "$PY" -m sglang.launch_server "${args[@]}" >"$OUT/logs/$name.log" 2>&1 &
  PIDS[$name]=$!
done
cleanup() {  # each server is its own process group (setsid): stop the group, scheduler included
  for n in "${!PIDS[@]}"; do kill -TERM -- "-${PIDS[$n]}" 2>/dev/null; done; sleep 3
  for n in "${!PIDS[@]}"; do kill -KILL -- "-${PIDS[$n]}" 2>/dev/null; done; }
trap cleanup EXIT

healthy() { "$PY" -c "import sys,urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1]+'/health',timeout=3).status!=200)" "$1" 2>/dev/null; }
UP=()
for name in "${NAMES[@]}"; do
  url="http://127.0.0.1:${PORT[$name]}"
  while [ "$(now)" -lt "${START_END_S:-170}" ]; do
    healthy "$url" && break
    kill -0 "${PIDS[$name]}" 2>/dev/null || break
    sleep 2
  done
  if healthy "$url"; then log "up: $name"; UP+=("$name"); else log "DOWN: $name"; tail -n 15 "$OUT/logs/$name.log"; fi
done
grep -h "sglang-dflash worker started" "$OUT"/logs/*.log || echo "note: no sglang-dflash start line found"
is_up() { local n; for n in "${UP[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }

# step NAME SECONDS CMD...: run if it can finish by END_S (SECONDS = its cap), else skip
step() {
  local name=$1 cap=$2; shift 2
  local left=$(( END_S - $(now) )); [ "$left" -lt "$cap" ] && cap=$left
  if [ "$cap" -lt 10 ]; then log "skip $name: no time left"; return; fi
  log "$name (cap ${cap}s)"; echo "$name: $*" >>"$cmds"
  timeout -k 5 "$cap" "$@" >"$OUT/logs/$name.out" 2>&1; local rc=$?
  log "$name: rc=$rc"; tail -n "${TAIL:-8}" "$OUT/logs/$name.out"
}
for b in $BLOCKS; do
  urls=()
  for name in "ours_b$b" "builtin_b$b"; do
    is_up "$name" || continue
    urls+=(--url "$name=http://127.0.0.1:${PORT[$name]}")
    step "eval_$name" "${EVAL_CAP_S:-40}" "$PY" -m sglang_dflash.eval --url "http://127.0.0.1:${PORT[$name]}" \
      --num-prompts "$EVAL_PROMPTS" --max-tokens "$MAX_TOKENS" --concurrency 16 --timeout 60 --no-progress \
      --out "$OUT/eval" --tag "smollm2-$name"
  done
  [ "$b" = "${BLOCKS%% *}" ] && is_up baseline && urls=(--url "baseline=http://127.0.0.1:${PORT[baseline]}" "${urls[@]}")
  [ ${#urls[@]} -gt 0 ] && step "bench_b$b" "${BENCH_CAP_S:-100}" "$PY" -m sglang_dflash.bench "${urls[@]}" --model "$T" \
    --prompts mix --num-prompts "$BENCH_PROMPTS" --max-tokens "$MAX_TOKENS" --natural-stop --concurrency "$CONCURRENCY" \
    --warmup 2 --timeout 60 --no-progress --out "$OUT" --tag "smollm2-h200-$BACKEND-b$b"
done

"$PY" - "$OUT" "$DRAFTER" "$BACKEND" "$(now)" <<'EOF'
import glob, json, os, platform, subprocess, sys, time
out, drafter, backend, wall = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def ver(m):
    try:
        return __import__(m).__version__
    except Exception as e:
        return f"n/a ({type(e).__name__})"
try:
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=10).stdout.strip()
except Exception:
    gpu = "none"
evals = {}
for p in sorted(glob.glob(os.path.join(out, "eval", "*.json"))):
    try:
        evals[os.path.basename(p)] = json.load(open(p))
    except Exception:
        pass
info = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "gpu": gpu, "host": platform.node(),
        "versions": {m: ver(m) for m in ("torch", "sglang", "transformers", "triton")},
        "attention_backend": backend, "dtype": "bfloat16", "drafter": drafter, "wall_s": wall,
        "commands": open(os.path.join(out, "commands.txt")).read().splitlines(),
        "bench_files": sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "*.json"))),
        "eval_files": sorted(evals)}
json.dump(info, open(os.path.join(out, "run_info.json"), "w"), indent=2)
print(json.dumps({k: info[k] for k in ("date", "gpu", "versions", "wall_s")}))
EOF
cat "$OUT"/*.md 2>/dev/null | head -40
ls "$OUT/eval"/*.md >/dev/null 2>&1 && for f in "$OUT"/eval/*.md; do echo "== $f"; head -20 "$f"; done
log "done"
