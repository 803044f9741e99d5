#!/usr/bin/env bash
# Device check on a GPU machine, with small random-weight models (nothing is downloaded).
# UNTESTED ON A GPU: written and run on CPU only (scripts/gpu/launch.sh needs nvidia-smi/CUDA).
#
#   bash scripts/gpu/device_check.sh            # OUT=/tmp/trimpomdp-gpu-check by default
#
# Needs a Python (VLLM_PYTHON, default python) with a CUDA build of vLLM (tested API: 0.32),
# transformers, tokenizers, safetensors, httpx and trimpomdp's core dependencies (numpy, scipy,
# scikit-learn, tqdm); the repository is used from this checkout (PYTHONPATH).
#  1. scripts/gpu/make_random_models.py: random weak / strong / PRM models + a local tokenizer
#  2. scripts/gpu/launch.sh start: the three servers (memory fractions, PRM --max-model-len 4096,
#     prefix caching, last-token PRM plugin), health wait
#  3. scripts/gpu/device_check.py: PRM mode + cost, weak-only vs TRIM throughput (interleaved)
#  4. scripts/gpu/launch.sh stop (also on failure): every server stopped by its PID
#  5. (INPROCESS=1, the default) scripts/gpu/device_check.py --inprocess: the same throughput
#     check on the in-process backend (three AsyncLLM engines, memory fractions 0.2/0.4/0.15)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/trimpomdp-gpu-check}
PY=${VLLM_PYTHON:-python}
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
start=$(date +%s)
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader || true
"$PY" -c "import vllm, torch; print('vllm', vllm.__version__, 'cuda', torch.cuda.is_available())"
[ -f "$OUT/models/prm/config.json" ] || "$PY" scripts/gpu/make_random_models.py "$OUT/models"
export WEAK_MODEL="$OUT/models/weak" STRONG_MODEL="$OUT/models/strong" PRM_MODEL="$OUT/models/prm"
export RUN_DIR="$OUT/servers" MAX_MODEL_LEN=${MAX_MODEL_LEN:-4096} VLLM_PYTHON="$PY"
export PRM_DTYPE=${PRM_DTYPE:-float32}
trap 'bash scripts/gpu/launch.sh stop' EXIT
bash scripts/gpu/launch.sh start
echo "== servers up after $(( $(date +%s) - start )) s"
set +e
"$PY" scripts/gpu/device_check.py --urls "$RUN_DIR/urls.json" --out "$OUT/device_check.json" \
  --problems "${PROBLEMS:-32}" --concurrency "${CONCURRENCY:-16}"
rc=$?
set -e
echo "== device check exit code $rc after $(( $(date +%s) - start )) s; report: $OUT/device_check.json"
if [ "${INPROCESS:-1}" = 1 ]; then
  bash scripts/gpu/launch.sh stop  # free the GPU for the in-process engines
  set +e
  "$PY" scripts/gpu/device_check.py --inprocess "$OUT/models" --out "$OUT/device_check_inprocess.json" \
    --problems "${PROBLEMS:-32}" --concurrency "${CONCURRENCY:-16}"
  rc2=$?
  set -e
  echo "== in-process check exit code $rc2 after $(( $(date +%s) - start )) s"
  [ "$rc" = 0 ] && rc=$rc2
fi
exit $rc
