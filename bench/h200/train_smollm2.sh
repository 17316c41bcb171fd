#!/usr/bin/env bash
# Train a better SmolLM2-135M drafter in ONE GPU call of <= 570 s (issue #5), then measure it.
#
#   phase      deadline (s after start, env)   what
#   convert    CONVERT_END=25                  GGUF -> fp32 HF checkpoint (sglang_dflash.smollm2)
#   prompts    -                               NUM fresh prompts (seed SEED), shipped held-out excluded
#   distill    DISTILL_END=215                 bf16 greedy replies of MAX_NEW tokens, by DISTILLER:
#                                              static (default: sglang_dflash.train.distill_static,
#                                              GEN_BATCH rows), sglang (SGLang's offline engine) or
#                                              none (train on EXTRA_DATA only); HF fallback if it fails
#   train      TRAIN_END=505                   continue the shipped drafter, --target-labels (fp32
#                                              target argmax), time-capped, no eval while training
#   measure    MEASURE_END=565                 reference decoder, fp32, 32 held-out prompts, blocks 8,16
#
# Every phase runs in its own process group and is killed at its deadline; a phase that ends
# early hands its time on (deadlines are absolute). Writes into OUTDIR: drafter/ (config.json +
# model.safetensors, bf16), measure.json, train_log.jsonl, train_summary.json, logs/, phases.json.
#
# Env: INIT_FROM (drafter to continue, default the shipped one), EXTRA_DATA (more distilled
# JSONL files, plain or .gz, to train on beside this run's, e.g. an earlier run's WORK/distill.jsonl), SAVE_DISTILL=1
# (OUTDIR/distill.jsonl.gz.partNN, <= 15 MiB each: the data survives the machine), SEED,
# NUM, MAX_NEW, BATCH, ANCHORS, LR, GAMMA, TRAIN_BLOCK_SIZES (the trainer's
# --train-block-sizes, default 8,16; empty: blocks of 16 only), the phase deadlines. WORK=DIR keeps the scratch
# folder (target, prompts, distilled data, checkpoint) for a second run on the same machine.
# GPU: source /tmp/gpu-env.sh first (SGLang 0.5.17), export SGLANG_DFLASH_SMOLLM2_GGUF=/tmp/smol.gguf.
# CPU dry run (tiny): see DRY_RUN=1 below; it shrinks every count and uses SGLang's CPU engine.
# Usage: bash bench/h200/train_smollm2.sh OUTDIR
set -uo pipefail
OUT=${1:?usage: train_smollm2.sh OUTDIR}
cd "$(dirname "$0")/../.."
REPO=$PWD
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
T0=$(date +%s)
W=${WORK:-/tmp/train-smollm2-$$}
mkdir -p "$W"
SHIPPED=sglang_dflash/assets/smollm2-drafter
HELDOUT=$SHIPPED/heldout.jsonl

if [ "${DRY_RUN:-0}" = 1 ]; then  # CPU, tiny: checks the plumbing, not the numbers
  : "${NUM:=24}" "${MAX_NEW:=16}" "${CONVERT_END:=120}" "${DISTILL_END:=330}" "${TRAIN_END:=420}" "${MEASURE_END:=560}"
  : "${MEASURE_PROMPTS:=2}" "${MEASURE_NEW:=16}" "${BATCH:=2}" "${ANCHORS:=4}" "${GEN_BATCH:=8}"
  SG_ARGS=(--dtype float32 --attention-backend torch_native --engine-arg device=cpu --engine-arg max_total_tokens=8192)
  export SGLANG_USE_CPU_ENGINE=1 PYTHONPATH="$REPO/tests/cpu_sglang/stubs:$PYTHONPATH"
  DEVICE_ARGS=(--device cpu)
  STATIC_ARGS=(--device cpu --dtype float32)
else
  STATIC_ARGS=()
  SG_ARGS=(--dtype "${DISTILL_DTYPE:-bfloat16}" --attention-backend triton --mem-fraction "${SG_MEM:-0.5}"
           --max-running-requests "${SG_RUNNING:-1536}"
           --engine-arg disable_prefill_cuda_graph=true  # its capture would eat ~1 min of distilling
           --log-level info)  # decode-batch lines (running requests, tokens/s): the 3rd run got 28 conv/s
  DEVICE_ARGS=()
fi
NUM=${NUM:-60000}; SEED=${SEED:-1}; MAX_NEW=${MAX_NEW:-256}
CONVERT_END=${CONVERT_END:-25}; DISTILL_END=${DISTILL_END:-215}; TRAIN_END=${TRAIN_END:-505}; MEASURE_END=${MEASURE_END:-565}
BATCH=${BATCH:-64}; ANCHORS=${ANCHORS:-64}; LR=${LR:-6e-4}; GAMMA=${GAMMA:-5}
MEASURE_PROMPTS=${MEASURE_PROMPTS:-32}; MEASURE_NEW=${MEASURE_NEW:-256}
TRAIN_OVERHEAD_S=${TRAIN_OVERHEAD_S:-35}  # trainer start, target load, tokenizing, export

now() { echo $(( $(date +%s) - T0 )); }
log() { echo "[$(now)s] $*"; }
PHASES=()
# run_phase NAME END_S CMD...: own process group, killed at END_S (s after start); rc in $RC
run_phase() {
  local name=$1 end=$2; shift 2
  local left=$(( end - $(now) ))
  if [ "$left" -le 0 ]; then log "$name: no time left, skipped"; RC=124; PHASES+=("\"$name\": {\"rc\": 124, \"s\": 0}"); return; fi
  local t=$(now)
  log "$name: start (deadline ${end}s, ${left}s left): $*"
  echo "$*" >"$OUT/logs/$name.cmd"
  setsid "$@" >"$OUT/logs/$name.log" 2>&1 &
  local pid=$!
  ( sleep "$left"; kill -TERM -- "-$pid" 2>/dev/null; sleep 8; kill -KILL -- "-$pid" 2>/dev/null ) >/dev/null 2>&1 &
  local dog=$!
  wait "$pid"; RC=$?
  kill "$dog" 2>/dev/null; wait "$dog" 2>/dev/null
  kill -KILL -- "-$pid" 2>/dev/null  # leftovers (engine subprocesses) must not hold the GPU
  log "$name: rc=$RC after $(( $(now) - t ))s; log tail:"
  tail -n "${TAIL:-6}" "$OUT/logs/$name.log" | tr '\r' '\n' | tail -n "${TAIL:-6}" | cut -c1-300
  PHASES+=("\"$name\": {\"rc\": $RC, \"s\": $(( $(now) - t )), \"end_s\": $(now)}")
}

# 1. target: fp32 checkpoint (the measure and the trainer's features / labels use fp32)
TGT=${SGLANG_DFLASH_SMOLLM2_DIR:-$W/smollm2}
run_phase convert "$CONVERT_END" "$PY" -m sglang_dflash.smollm2 --out "$TGT"
[ "$RC" = 0 ] || { log "conversion failed"; exit 1; }

# 2. prompts: a fresh seed, then drop any conversation whose prompt is in the shipped held-out set
"$PY" -m sglang_dflash.train.prompts --out "$W/prompts" --num "$NUM" --heldout 0 --seed "$SEED" >/dev/null || exit 1
"$PY" - "$W/prompts/train.jsonl" "$HELDOUT" "$W/train.jsonl" <<'EOF' || exit 1
import json, sys
from sglang_dflash.train.distill import prompt_key
from sglang_dflash.train.data import read_records
held = {prompt_key(r) for r in read_records(sys.argv[2])}
n = kept = 0
with open(sys.argv[3], "w") as f:
    for line in open(sys.argv[1]):
        n += 1
        if prompt_key(json.loads(line)) not in held:
            kept += 1
            f.write(line)
print(f"prompts: {kept} of {n} kept ({n - kept} in the held-out set)")
EOF

# 3. self-distillation (bf16 greedy text; --target-labels makes the labels fp32-exact)
DISTILLER=${DISTILLER:-static}
case $DISTILLER in
  static) run_phase distill "$DISTILL_END" "$PY" -m sglang_dflash.train.distill_static --target "$TGT" \
            --data "$W/train.jsonl" --out "$W/distill.jsonl" --max-new-tokens "$MAX_NEW" --seed "$SEED" \
            --max-seconds $(( DISTILL_END - $(now) - 8 )) --batch-size "${GEN_BATCH:-1024}" "${STATIC_ARGS[@]}" ;;
  sglang) run_phase distill "$DISTILL_END" "$PY" -m sglang_dflash.train.distill_sglang --target "$TGT" \
            --data "$W/train.jsonl" --out "$W/distill.jsonl" --max-new-tokens "$MAX_NEW" \
            --max-seconds $(( DISTILL_END - $(now) - 12 )) "${SG_ARGS[@]}" ;;
  none) log "DISTILLER=none: training on EXTRA_DATA only (${EXTRA_DATA:-nothing})" ;;
  *) log "DISTILLER: expected static, sglang or none, got '$DISTILLER'"; exit 2 ;;
esac
N_DIST=0
[ -s "$W/distill.jsonl" ] || cp "$W/distill.jsonl.cache" "$W/distill.jsonl" 2>/dev/null
[ -s "$W/distill.jsonl" ] && N_DIST=$(wc -l <"$W/distill.jsonl")
log "distilled conversations: $N_DIST"
if [ "${SAVE_DISTILL:-0}" = 1 ] && [ "$N_DIST" -gt 0 ]; then
  gzip -c "$W/distill.jsonl" | split -b 15M -d - "$OUT/distill.jsonl.gz.part"
  log "saved: $(ls "$OUT"/distill.jsonl.gz.part* | wc -l) part(s) of $(cat "$OUT"/distill.jsonl.gz.part* | wc -c) bytes"
fi

# 4. train (continue the shipped drafter); if SGLang gave (almost) nothing, let the trainer
#    self-distill with HF generate (bf16) for half of the remaining time instead
COMMON=(--target "$TGT" --out "$W/run" --init-from "${INIT_FROM:-$SHIPPED}" --block-size 16 --num-layers 3 --num-target-features 5
        --batch-size "$BATCH" --num-anchors "$ANCHORS" --lr "$LR" --gamma "$GAMMA" --weight-decay 0.05 --warmup 0.02
        --steps 1000000 --eval-prompts 0 --log-every 50 --save-every 0 --target-labels "${DEVICE_ARGS[@]}")
TRAIN_BLOCK_SIZES=${TRAIN_BLOCK_SIZES-8,16}  # as for the shipped drafter (runs 5-6); set empty for 16 only
[ -n "$TRAIN_BLOCK_SIZES" ] && COMMON+=(--train-block-sizes "$TRAIN_BLOCK_SIZES")
LEFT=$(( TRAIN_END - $(now) - TRAIN_OVERHEAD_S ))
# shellcheck disable=SC2206  # EXTRA_DATA: space-separated paths
EXTRA=(${EXTRA_DATA:-})
for i in "${!EXTRA[@]}"; do  # gzipped JSONL (what SAVE_DISTILL brings back, parts joined): unpack
  case ${EXTRA[$i]} in
    *.gz) gunzip -c "${EXTRA[$i]}" >"$W/extra_$i.jsonl" || exit 1; EXTRA[$i]=$W/extra_$i.jsonl ;;
  esac
done
if [ "$DISTILLER" = none ]; then
  [ "${#EXTRA[@]}" -gt 0 ] || { log "DISTILLER=none needs EXTRA_DATA"; exit 2; }
  DATA=(--data "${EXTRA[@]}")
elif [ "$N_DIST" -ge "${MIN_DIST:-2000}" ] || { [ "${DRY_RUN:-0}" = 1 ] && [ "$N_DIST" -gt 0 ]; }; then
  DATA=(--data "$W/distill.jsonl" "${EXTRA[@]}")
else
  log "SGLang distillation gave $N_DIST conversations: falling back to the trainer's HF self-distillation"
  DATA=(--data "$W/train.jsonl" --self-distill --distill-max-new-tokens "$MAX_NEW" --distill-batch-size 1024
        --distill-max-minutes "$(python3 -c "print(max(0.2, $LEFT / 2 / 60))")")
  LEFT=$(( LEFT / 2 ))
fi
MINUTES=$(python3 -c "print(round(max(0.1, $LEFT / 60), 2))")
run_phase train "$TRAIN_END" "$PY" -m sglang_dflash.train "${COMMON[@]}" "${DATA[@]}" --max-minutes "$MINUTES"
mkdir -p "$OUT/drafter"
if [ -s "$W/run/model.safetensors" ]; then
  cp "$W/run/config.json" "$W/run/model.safetensors" "$OUT/drafter/"
  cp "$W/run/train_log.jsonl" "$W/run/train_summary.json" "$OUT/" 2>/dev/null
  DRAFTER=$OUT/drafter
  rm -rf "${KEEP_DRAFTER:-/tmp/smollm2-drafter-new}" && cp -r "$OUT/drafter" "${KEEP_DRAFTER:-/tmp/smollm2-drafter-new}"  # for bench/h200/smollm2.sh on this machine
else
  log "training wrote no drafter; measuring the shipped one"
  cp "$W/run/train_log.jsonl" "$OUT/" 2>/dev/null
  DRAFTER=$SHIPPED
fi

# 5. measure on the shipped held-out prompts (as in the drafter README)
run_phase measure "$MEASURE_END" "$PY" -m sglang_dflash.train.measure --target "$TGT" --drafter "$DRAFTER" \
  --data "$HELDOUT" --num-prompts "$MEASURE_PROMPTS" --block-sizes 8,16 --max-new-tokens "$MEASURE_NEW" \
  --out "$OUT/measure.json" "${DEVICE_ARGS[@]}"

head -c 2000000 "$W/distill.jsonl" >"$OUT/distill_sample.jsonl" 2>/dev/null  # a peek at the data (<= 2 MB)
{
  echo "{"
  echo "  \"date\": \"$(date -u +%FT%TZ)\", \"host\": \"$(hostname)\", \"wall_s\": $(now), \"distilled\": $N_DIST,"
  echo "  \"gpu\": \"$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)\","
  echo "  \"init_from\": \"${INIT_FROM:-$SHIPPED}\", \"extra_data\": \"${EXTRA_DATA:-}\","
  echo "  \"settings\": {\"NUM\": $NUM, \"SEED\": $SEED, \"MAX_NEW\": $MAX_NEW, \"BATCH\": $BATCH, \"ANCHORS\": $ANCHORS, \"LR\": \"$LR\", \"GAMMA\": \"$GAMMA\", \"TRAIN_BLOCK_SIZES\": \"$TRAIN_BLOCK_SIZES\", \"train_minutes\": $MINUTES},"
  echo "  \"phases\": {$(IFS=,; echo "${PHASES[*]}")}"
  echo "}"
} >"$OUT/phases.json"
log "done: $(cat "$OUT/measure.json" 2>/dev/null | "$PY" -c "import json,sys; d=json.load(sys.stdin); print({k: v['mean_acceptance'] for k, v in d['block_sizes'].items()})" 2>/dev/null || echo 'no measure.json')"
[ -n "${WORK:-}" ] || [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$W"  # our own scratch folder only
[ -s "$OUT/measure.json" ] && [ "$DRAFTER" = "$OUT/drafter" ]
