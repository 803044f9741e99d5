#!/usr/bin/env bash
# Every command of the README's table, as written, after the BASIC install only (no extras):
# each must exit 0, or exit 2 with one line naming the extra to install (never a traceback).
# Usage: bash .ci/readme_commands.sh /path/to/venv/bin/trimpomdp   (runs in a temporary folder)
set -uo pipefail
T=${1:-trimpomdp}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
cd "$work"
fail=0
check() {  # check EXPECT CMD...   EXPECT: ok | extra
  local expect=$1; shift
  local out rc
  out=$("$@" 2>&1); rc=$?
  if echo "$out" | grep -q "Traceback"; then
    echo "FAIL (traceback): $*"; echo "$out" | tail -5; fail=1; return
  fi
  if [ "$expect" = ok ] && [ $rc -ne 0 ]; then
    echo "FAIL (exit $rc): $*"; echo "$out" | tail -3; fail=1; return
  fi
  if [ "$expect" = clear ] && [ $rc -ne 0 ] && { [ $rc -ne 2 ] || [ "$(echo "$out" | grep -c "error:")" -ne 1 ]; }; then
    echo "FAIL (expected exit 0, or 2 with one error line; got $rc): $*"; echo "$out" | tail -3; fail=1; return
  fi
  if [ "$expect" = extra ] && { [ $rc -ne 2 ] || ! echo "$out" | grep -q "pip install 'trimpomdp\["; }; then
    echo "FAIL (expected exit 2 naming an extra, got $rc): $*"; echo "$out" | tail -3; fail=1; return
  fi
  echo "ok ($expect): $*"
}
# bundled data for the commands that read files: real release traces, made into the README's names
"$(dirname "$T")/python" - "$repo" <<'PY'
import json, sys
from trimpomdp.data import read_traces, write_traces
from trimpomdp.resources import resource_path
traces = read_traces(resource_path("data", "strictprmbench_sample/math500_qwen2.5-7b_qwen-prm_sample.jsonl"))
write_traces("traces.jsonl", traces)
with open("obs.jsonl", "w") as fh:
    for tr in traces[:300]:
        m = 1.0
        for t, s in enumerate(tr.scores):
            st = "S0" if tr.correct else ("S2" if t == len(tr.scores) - 1 else "S1")
            fh.write(json.dumps({"min_prev": m, "current": s, "state": st}) + "\n")
            m = min(m, s)
PY
check ok "$T" demo
check ok "$T" solve --lambda 0.25 --out policy.json
check ok "$T" act --policy policy.json --step 3 --tokens 60 --belief 0.2,0.1,0.7
check ok "$T" sweep --lambdas 0.05:0.85:50 --out sweep/
check ok "$T" explain --policy policy.json --step 5
check ok "$T" export-pomdp --lambda 0.25 --step 10 --tokens 60 --belief 0.5,0.2,0.3 --out x.pomdp
check ok "$T" fit --data obs.jsonl --out model.json
check ok "$T" fit-em --traces traces.jsonl --out model_em.json
check ok "$T" simulate --policy thr:0.3 --n 2000 --json
check ok "$T" simulate --policy pomdp:0.65 --release-rule --n 2000
# continue-only traces: the strong accuracy is not identifiable, which fit-model says in one line
check clear "$T" fit-model --traces traces.jsonl --out model_fit.json
check ok "$T" assess model_em.json traces.jsonl
check extra "$T" train-agg --lambda 0.25 --out agg.json
check extra "$T" run --weak http://127.0.0.1:9 --strong http://127.0.0.1:9 --prm http://127.0.0.1:9 --dataset math500 --policy thr:0.5 --out RUN/
check extra "$T" serve --weak http://127.0.0.1:9 --strong http://127.0.0.1:9 --prm http://127.0.0.1:9 --policy thr:0.5 --port 8765
check ok "$T" solve-pomdp "$repo/tests/pomdp/files/tiger_named.pomdp" --solver sarsop --timeout 2
rm -rf "$work"
exit $fail
