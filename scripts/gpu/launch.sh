#!/usr/bin/env bash
# Weak / strong / PRM vLLM servers on one or more GPUs for `trimpomdp run` / `serve`.
# UNTESTED ON A GPU (written and checked on CPU only; see docs/live_loop.md, "GPU recipe").
#
#   scripts/gpu/launch.sh start      # start the three servers one after the other, wait for /health
#   scripts/gpu/launch.sh status     # PIDs, URLs, health
#   scripts/gpu/launch.sh stop       # SIGTERM each server's process group by its PID, then SIGKILL
#
# Placement (GPUS, comma-separated device ids; default: all that nvidia-smi lists):
#   1 GPU : all three on it, memory fractions WEAK_MEM / STRONG_MEM / PRM_MEM (0.20 / 0.50 / 0.15)
#   2 GPUs: weak + PRM on the first (0.45 / 0.40), strong on the second (0.90)
#   3+    : one each (0.90), strong with tensor parallelism over the remaining GPUs (STRONG_TP)
# Servers start one at a time: vLLM sizes its KV cache from the memory free at start-up.
#
# Env: WEAK_MODEL STRONG_MODEL PRM_MODEL (folders or HF ids already in the local cache; the PRM is
#      a Qwen2.5-Math-PRM-style Qwen2ForProcessRewardModel), VLLM_PYTHON (default python),
#      RUN_DIR (default runs/gpu-servers: logs, PIDs, urls.json), HOST (127.0.0.1),
#      WEAK_PORT STRONG_PORT PRM_PORT (8001-8003), MAX_MODEL_LEN (generators, 8192),
#      PRM_MAX_LEN (4096, the release's PRM limit), DTYPE (bfloat16), PRM_DTYPE (bfloat16),
#      BLOCK_SIZE (16: prefix-cache granularity), HEALTH_TIMEOUT (900 s), EXTRA_ARGS (all servers).
# The PRM server loads trimpomdp's vLLM plugin (PYTHONPATH) and pools the last token
# ("classify"), so each step's score is served from the prefix cache (linear cost); set
# PRM_LAST_POOL=0 for the stock STEP pooler (whole prefix recomputed every step).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PY=${VLLM_PYTHON:-python}
RUN_DIR=${RUN_DIR:-runs/gpu-servers}
HOST=${HOST:-127.0.0.1}
mkdir -p "$RUN_DIR"

gpus() {
  if [ -n "${GPUS:-}" ]; then echo "$GPUS"; return; fi
  nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | paste -sd, -
}

prm_marker_id() {  # id of <extra_0> in the PRM's tokenizer
  "$PY" - "$1" <<'PYEOF'
import sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
i = tok.convert_tokens_to_ids("<extra_0>")
if i is None or i == tok.unk_token_id:
    sys.exit(f"{sys.argv[1]}: the tokenizer has no <extra_0> token")
print(i)
PYEOF
}

wait_healthy() {  # name port pid
  local deadline=$(( $(date +%s) + ${HEALTH_TIMEOUT:-900} ))
  until curl -sf "http://$HOST:$2/health" >/dev/null; do
    if ! kill -0 "$3" 2>/dev/null; then
      echo "!! $1 exited; last lines of $RUN_DIR/$1.log:" >&2; tail -30 "$RUN_DIR/$1.log" >&2
      return 1
    fi
    if [ "$(date +%s)" -gt "$deadline" ]; then
      echo "!! $1 not healthy after ${HEALTH_TIMEOUT:-900} s" >&2; return 1
    fi
    sleep 2
  done
  echo "== $1 healthy at http://$HOST:$2 (pid $3)"
}

start_one() {  # name devices port mem tp model maxlen dtype [extra...]
  local name=$1 dev=$2 port=$3 mem=$4 tp=$5 model=$6 maxlen=$7 dtype=$8; shift 8
  if [ -f "$RUN_DIR/$name.pid" ] && kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null; then
    echo "== $name already running (pid $(cat "$RUN_DIR/$name.pid"))"; return
  fi
  echo "== starting $name on GPU $dev (memory fraction $mem, TP $tp): $model"
  # setsid: the server leads its own process group, so stop can signal all its workers
  CUDA_VISIBLE_DEVICES=$dev VLLM_NO_USAGE_STATS=1 setsid "$PY" -m vllm.entrypoints.openai.api_server \
    --model "$model" --served-model-name "$name" --host "$HOST" --port "$port" \
    --gpu-memory-utilization "$mem" --tensor-parallel-size "$tp" --max-model-len "$maxlen" \
    --dtype "$dtype" --enable-prefix-caching --block-size "${BLOCK_SIZE:-16}" \
    ${EXTRA_ARGS:-} "$@" >"$RUN_DIR/$name.log" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
  wait_healthy "$name" "$port" "$!"
}

start() {
  : "${WEAK_MODEL:?set WEAK_MODEL}" "${STRONG_MODEL:?set STRONG_MODEL}" "${PRM_MODEL:?set PRM_MODEL}"
  IFS=, read -r -a G <<<"$(gpus)"
  [ "${#G[@]}" -ge 1 ] || { echo "no GPU found (set GPUS)" >&2; exit 2; }
  local wp=${WEAK_PORT:-8001} sp=${STRONG_PORT:-8002} pp=${PRM_PORT:-8003}
  local wd sd pd wm sm pm stp=1
  case ${#G[@]} in
    1) wd=${G[0]}; sd=${G[0]}; pd=${G[0]}; wm=${WEAK_MEM:-0.20}; sm=${STRONG_MEM:-0.50}; pm=${PRM_MEM:-0.15} ;;
    2) wd=${G[0]}; pd=${G[0]}; sd=${G[1]}; wm=${WEAK_MEM:-0.45}; pm=${PRM_MEM:-0.40}; sm=${STRONG_MEM:-0.90} ;;
    *) wd=${G[0]}; pd=${G[1]}; sd=$(IFS=,; echo "${G[*]:2}"); stp=${STRONG_TP:-$(( ${#G[@]} - 2 ))}
       sd=$(echo "$sd" | cut -d, -f1-"$stp"); wm=${WEAK_MEM:-0.90}; pm=${PRM_MEM:-0.90}; sm=${STRONG_MEM:-0.90} ;;
  esac
  local marker; marker=$(prm_marker_id "$PRM_MODEL")
  local task=""; local prm_env=()
  if [ "${PRM_LAST_POOL:-1}" = 1 ]; then
    local plug="$RUN_DIR/vllm-plugin"
    "$PY" "$ROOT/trimpomdp/generation/vllm_prm_plugin.py" "$plug" >/dev/null
    export PYTHONPATH="$(cd "$plug" && pwd)${PYTHONPATH:+:$PYTHONPATH}"
    task=', "task": "classify"'
  fi
  # the PRM first: it is the smallest and its limit is fixed (4096)
  start_one prm "$pd" "$pp" "$pm" 1 "$PRM_MODEL" "${PRM_MAX_LEN:-4096}" "${PRM_DTYPE:-bfloat16}" \
    --runner pooling --pooler-config "{\"pooling_type\": \"STEP\", \"step_tag_id\": $marker$task}"
  unset PYTHONPATH
  start_one weak "$wd" "$wp" "$wm" 1 "$WEAK_MODEL" "${MAX_MODEL_LEN:-8192}" "${DTYPE:-bfloat16}"
  start_one strong "$sd" "$sp" "$sm" "$stp" "$STRONG_MODEL" "${MAX_MODEL_LEN:-8192}" "${DTYPE:-bfloat16}"
  printf '{"weak": "http://%s:%s", "strong": "http://%s:%s", "prm": "http://%s:%s"}\n' \
    "$HOST" "$wp" "$HOST" "$sp" "$HOST" "$pp" >"$RUN_DIR/urls.json"
  echo "== all healthy: $(cat "$RUN_DIR/urls.json")"
  echo "   trimpomdp run --weak http://$HOST:$wp --strong http://$HOST:$sp --prm http://$HOST:$pp ..."
}

stop() {
  local f pid
  for f in "$RUN_DIR"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      echo "== stopping $(basename "$f" .pid) (process group $pid)"
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; }
    fi
    rm -f "$f"
  done
}

status() {
  local f pid name
  for f in "$RUN_DIR"/*.pid; do
    [ -e "$f" ] || { echo "no servers"; return; }
    pid=$(cat "$f"); name=$(basename "$f" .pid)
    if kill -0 "$pid" 2>/dev/null; then echo "$name: pid $pid running"; else echo "$name: pid $pid gone"; fi
  done
  [ -f "$RUN_DIR/urls.json" ] && cat "$RUN_DIR/urls.json"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
