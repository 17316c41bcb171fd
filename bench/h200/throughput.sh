#!/usr/bin/env bash
# Throughput table at Qwen3-8B shapes with dummy weights, on one H200, in one go:
# no speculation, SGLang's built-in DFLASH and ours, at SGLANG_SIMULATE_ACC_LEN 1 and 6.44,
# concurrency 1, 8, 32, 256 output tokens (ignore_eos).
#
# The five servers run side by side (started one after another, see below) and are measured one
# after another, so no two timings overlap.
# Needs: SGLang 0.5.17 importable (source /tmp/gpu-env.sh after staging the bundle) and this repo.
# Usage: bash bench/h200/throughput.sh OUTDIR [ATTENTION_BACKEND]
# Env: SERVERS (subset of the five names below), CONCURRENCY (1,8,32), NUM_PROMPTS (8), SEED (0),
#      ROUNDS (4: parts per level, servers taking turns), WAVES (4: requests per level at least
#      WAVES x concurrency), SLEEP_ON_IDLE (0), METRICS (0; 1: first-token stages, ttft_split.py), PIN_CPUS (cores per server), BUDGET_GB (26) or MEM_FRACTION (fixed), PREFILL_GRAPH (1) with PREFILL_GRAPH_BS and PREFILL_GRAPH_MAX_TOKENS, TP (1), MAX_TOTAL_TOKENS (set: all
#      servers start at once with that KV cap and --cuda-graph-max-bs GRAPH_MAX_BS (64)),
#      STEP_TIMING (N: our servers log the per-step time split every N decode steps,
#      summarised into OUTDIR/step_split.json; off when unset), BENCH (1; 0 skips the table),
#      PROBE (1: bench/h200/ttft_probe.py on the running servers into OUTDIR/probe, with
#      PROBE_ARGS), IDLE (1: bench/h200/gpu_idle.py, GPU-only profiles of the running servers
#      reduced to idle time per step, into OUTDIR/idle, with IDLE_ARGS), SGLANG_DFLASH_SYNC_DEBUG (passed on: see sglang_dflash/sglang/sync_debug.py)
# Server names: baseline, builtin_accX, ours_accX, timed_accX (ours with the step timer every
# 8 steps, whatever STEP_TIMING says: a timed twin beside an untimed one).
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
# Servers start one after another, each once the previous one answers /health, and each gets
# a fixed memory budget (BUDGET_GB, default 26: weights ~18 GB + KV cache + graphs) expressed as
# the fraction of the memory free at its launch: SGLang sizes its KV pool from the free memory
# it sees, so servers starting side by side race for it.
# One --random-seed for every server: SGLANG_SIMULATE_ACC_LEN draws each step's forced length
# from torch's host RNG, so the built-in and ours then see the same sequence of lengths
# (common random numbers) instead of two independent ones that differ by ~1% over a run.
COMMON=(--model-path "$T" --load-format dummy --attention-backend "$BACKEND" --host 127.0.0.1 --log-level info
        --random-seed "${SEED:-0}")
# TP=N: every server at --tp-size N (a machine with N GPUs; issue 8's tp-2 table). NVLink
# multicast stays off, as the lent multi-GPU machines require.
if [ "${TP:-1}" != 1 ]; then
  COMMON+=(--tp-size "$TP")
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
fi
# Prefill CUDA graphs (PREFILL_GRAPH, default 1), as SGLang 0.5.17 serves by default on CUDA
# (its breakable graph), captured at PREFILL_GRAPH_BS token counts only (--cuda-graph-bs-prefill;
# a prefill pads up to the next one, larger ones run eagerly). SGLang's own list goes up to
# 8192 tokens: ~85 s of capture and ~23 GB per server, too much for five side by side. The
# bench prompts have 23 to 67 tokens, so 1024 covers every prefill of c=1 and c=8. Without
# prefill graphs (PREFILL_GRAPH=0, the table of sessions 2-9) the first token is an eager
# prefill launched from two pinned cores: 28 to 66 ms at c=1, and its run-to-run movement
# moved whole cells by 3%. PREFILL_GRAPH_MAX_TOKENS (1024, the list's largest) goes to
# --cuda-graph-max-bs-prefill. Session 10 ran the table with these defaults.
if [ "${PREFILL_GRAPH:-1}" = 1 ]; then
  COMMON+=(--cuda-graph-max-bs-prefill "${PREFILL_GRAPH_MAX_TOKENS:-1024}")
  # shellcheck disable=SC2206  # a space-separated list of token counts
  COMMON+=(--cuda-graph-bs-prefill ${PREFILL_GRAPH_BS:-16 32 48 64 96 128 192 256 384 512 768 1024})
else
  COMMON+=(--disable-prefill-cuda-graph)
fi
# SLEEP_ON_IDLE=1: idle schedulers block on their sockets instead of polling (SGLang's
# --sleep-on-idle). Five servers side by side otherwise keep five polling loops busy while
# one of them is measured; not yet measured either way.
[ "${SLEEP_ON_IDLE:-0}" = 1 ] && COMMON+=(--sleep-on-idle)
# METRICS=1: every server returns its own per-request timestamps (SGLang's --enable-metrics),
# which bench/h200/ttft_split.py turns into the stages of each first token (OUTDIR/ttft_split.*).
# SGLang needs prometheus_client for it, which the GPU bundle lacks: carry its wheel in
# .gpu/wheels (python3 -m pip download --no-deps prometheus-client==0.21.1 -d .gpu/wheels).
if [ "${METRICS:-0}" = 1 ]; then
  if ! python3 -c "import prometheus_client" 2>/dev/null; then
    ls .gpu/wheels/prometheus_client-*.whl >/dev/null 2>&1 \
      || { echo "METRICS=1: no prometheus_client here and no wheel in .gpu/wheels (see above)" >&2; exit 2; }
    python3 -m pip install -q --no-deps --no-index --target /tmp/metrics-site .gpu/wheels/prometheus_client-*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/metrics-site"
  fi
  COMMON+=(--enable-metrics)
fi
SPEC=(--speculative-algorithm DFLASH --speculative-draft-model-path "$D" --speculative-draft-load-format dummy
      --speculative-num-draft-tokens 16 --speculative-draft-attention-backend "$BACKEND")
LOGS=$OUT/logs
PIDS=$(mktemp -d /tmp/h200-bench-pids.XXXX)

fraction() {  # BUDGET_GB as a fraction of the GPU memory free now (or MEM_FRACTION if set)
  if [ -n "${MEM_FRACTION:-}" ]; then echo "$MEM_FRACTION"; return; fi
  python3 - "${BUDGET_GB:-26}" <<'PY'
import sys, torch
free, _ = torch.cuda.mem_get_info()
print(f"{min(0.9, float(sys.argv[1]) * 2**30 / free):.3f}")
PY
}
healthy() {  # url -> exit 0 when /health answers 200 (no curl needed)
  python3 -c "import sys,urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1]+'/health',timeout=3).status!=200)" "$1" 2>/dev/null
}
declare -A PORT=([baseline]=31000 [builtin_acc1]=31001 [builtin_acc6.44]=31002 [ours_acc1]=31003 [ours_acc6.44]=31004
                 [timed_acc1]=31005 [timed_acc6.44]=31006)
# PIN_CPUS=K: the n-th server started runs on K CPUs of its own (taskset; its scheduler,
# tokenizer and detokenizer processes inherit it), handed out whole physical cores first
# (bench/h200/cpu_slots.py: hyperthread siblings together), so side-by-side servers share no
# core; the rest are the bench client's (it is pinned to them too, so it cannot land on a
# server's core and delay that server's host-bound prefills). The topology read goes to
# OUTDIR/cpu_topology.txt.
SERVERS=${SERVERS:-baseline builtin_acc1 builtin_acc6.44 ours_acc1 ours_acc6.44}
SLOT=0
CPU_SLOTS=()
if [ -n "${PIN_CPUS:-}" ]; then
  n_servers=$(echo $SERVERS | wc -w)
  mapfile -t CPU_SLOTS < <(python3 bench/h200/cpu_slots.py --per-server "$PIN_CPUS" \
      --servers "$n_servers" --report "$OUT/cpu_topology.txt") || true
  [ "${#CPU_SLOTS[@]}" -eq $(( n_servers + 1 )) ] || { echo "PIN_CPUS=$PIN_CPUS: no CPU split for $n_servers servers" >&2; exit 2; }
fi
pin() {  # -> "taskset -c LIST" for server number SLOT, or nothing
  [ -n "${PIN_CPUS:-}" ] || return 0
  echo taskset -c "${CPU_SLOTS[$SLOT]}"
}
start() {  # name impl acc
  local name=$1 impl=$2 acc=$3 timing=${4:-${STEP_TIMING:-0}} frac cores
  frac=$(fraction)
  cores=$(pin) || exit 2
  SLOT=$(( SLOT + 1 ))
  echo "starting $name (--mem-fraction-static $frac${cores:+, $cores})"
  if [ "$impl" = none ]; then
    $cores python3 -m sglang.launch_server "${COMMON[@]}" --mem-fraction-static "$frac" --port "${PORT[$name]}" \
      >"$LOGS/$name.log" 2>&1 &
  else
    SGLANG_DFLASH_IMPL=$impl SGLANG_SIMULATE_ACC_LEN=$acc SGLANG_DFLASH_STEP_TIMING=$timing \
      $cores python3 -m sglang.launch_server "${COMMON[@]}" "${SPEC[@]}" --mem-fraction-static "$frac" \
      --port "${PORT[$name]}" >"$LOGS/$name.log" 2>&1 &
  fi
  echo "$!" >"$PIDS/$name"
}
wait_up() {  # name -> 0 when healthy, 1 when the server died or timed out
  local url="http://127.0.0.1:${PORT[$1]}"
  for _ in $(seq 1 240); do
    healthy "$url" && return 0
    kill -0 "$(cat "$PIDS/$1")" 2>/dev/null || return 1
    sleep 2
  done
  return 1
}
urls=()
launch() {
  case $1 in
    baseline) start baseline none 0 ;;
    builtin_acc*) start "$1" builtin "${1#builtin_acc}" ;;
    ours_acc*) start "$1" sglang_dflash "${1#ours_acc}" ;;
    timed_acc*) start "$1" sglang_dflash "${1#timed_acc}" 8 ;;
  esac
}
report_up() {
  if wait_up "$1"; then
    echo "up: $1 ($SECONDS s)"; urls+=(--url "$1=http://127.0.0.1:${PORT[$1]}")
  else
    echo "DOWN: $1"; tail -n 30 "$LOGS/$1.log"
  fi
}
if [ -n "${MAX_TOTAL_TOKENS:-}" ]; then
  # Side by side: every KV pool is capped, so the fraction is only SGLang's start-up check
  # (a server fails when its free memory drops by more than that share while it loads).
  COMMON+=(--max-total-tokens "$MAX_TOTAL_TOKENS" --cuda-graph-max-bs "${GRAPH_MAX_BS:-64}")
  MEM_FRACTION=${MEM_FRACTION:-0.9}
  for name in $SERVERS; do launch "$name"; done
  for name in $SERVERS; do report_up "$name"; done
else
  for name in $SERVERS; do launch "$name"; report_up "$name"; done
fi
grep -h "sglang-dflash worker started" "$OUT"/logs/*.log || echo "note: no sglang-dflash start line found"

rc=0
CLIENT=()  # PIN_CPUS: the client and the probes run on the CPUs no server has
if [ -n "${PIN_CPUS:-}" ]; then
  if [ -n "${CPU_SLOTS[-1]}" ]; then
    CLIENT=(taskset -c "${CPU_SLOTS[-1]}")
  else
    echo "note: PIN_CPUS=$PIN_CPUS leaves no CPU for the client; it runs unpinned"
  fi
fi
if [ "${BENCH:-1}" = 1 ]; then
  # ROUNDS parts per level, servers taking turns (sglang_dflash.bench --rounds): the host of the
  # H200 drifts by +-10 ms of TTFT over minutes, which one-server-after-another charged to
  # whichever server ran then. --save-requests keeps every request's send time and TTFT
  # (bench/h200/waves.py groups them into the waves of one concurrency level).
  "${CLIENT[@]}" python3 -m sglang_dflash.bench "${urls[@]}" --model "$T" --prompts mix --num-prompts "${NUM_PROMPTS:-8}" --max-tokens 256 \
    --concurrency "${CONCURRENCY:-1,8,32}" --warmup 2 --rounds "${ROUNDS:-4}" --min-waves "${WAVES:-4}" --no-progress --save-requests --out "$OUT" \
    --tag qwen3-8b-dummy-h200-$BACKEND
  rc=$?
  python3 bench/h200/waves.py "$OUT/qwen3-8b-dummy-h200-$BACKEND.requests.jsonl" >"$OUT/waves.txt" 2>&1 || true
  [ "${METRICS:-0}" = 1 ] && { python3 bench/h200/ttft_split.py "$OUT/qwen3-8b-dummy-h200-$BACKEND.requests.jsonl" \
      --json "$OUT/ttft_split.json" >"$OUT/ttft_split.txt" 2>&1 || true; }
fi
if [ "${PROBE:-0}" = 1 ]; then
  # shellcheck disable=SC2086  # PROBE_ARGS: extra flags, split on spaces
  "${CLIENT[@]}" python3 bench/h200/ttft_probe.py "${urls[@]}" --model "$T" --out "$OUT/probe" ${PROBE_ARGS:-} || rc=1
fi
if [ "${IDLE:-0}" = 1 ]; then
  # shellcheck disable=SC2086  # IDLE_ARGS: extra flags, split on spaces
  "${CLIENT[@]}" python3 bench/h200/gpu_idle.py "${urls[@]}" --out "$OUT/idle" ${IDLE_ARGS:-} || rc=1
fi
timed_logs=$(ls "$OUT"/logs/ours_*.log "$OUT"/logs/timed_*.log 2>/dev/null)
if [ -n "${STEP_TIMING:-}" ] || ls "$OUT"/logs/timed_*.log >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  python3 -m sglang_dflash.bench.steptiming $timed_logs --out "$OUT/step_split.json" || true
fi
for pid in "$PIDS"/*; do kill "$(cat "$pid")" 2>/dev/null; done
wait 2>/dev/null
# the device tool returns at most 8 files: the server logs travel as one archive
tar -czf "$OUT/server-logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
exit $rc
