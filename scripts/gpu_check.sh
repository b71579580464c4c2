#!/usr/bin/env bash
# The GPU check (issue 22): every CUDA path in one run of at most 8 minutes on one GPU.
# Writes gpu_check.json, gpu_check.txt and gpu_check.log to $1, else $OUT, else gpu_check_out/.
# Run from anywhere; it works in the repository root. Carry `.whl/` (make gpu-wheels) where
# optuna/pydantic are missing: they are installed into /tmp/site and put on PYTHONPATH.
# Each part runs under its own `timeout`; a part that fails or runs out of time does not stop the others.
# Exit: 2 without CUDA, 0 when every part is ok, 1 otherwise.
# Budgets (seconds) can be changed with GPU_CHECK_BUDGETS="tests=90 steps=150 ..." (total <= 480).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python

# GPU_CHECK_DEVICE=cpu runs the same flow on CPU (to try the script itself; the figures mean nothing).
DEVICE=${GPU_CHECK_DEVICE:-cuda}
if [ "$DEVICE" != cpu ] && ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 2)" 2>/dev/null; then
    echo "gpu_check.sh: no CUDA GPU here (torch.cuda.is_available() is False with $PY); run it on a GPU machine" >&2
    exit 2
fi

OUT_DIR=${1:-${OUT:-gpu_check_out}}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
WORK=$(mktemp -d /tmp/gpu-check-XXXXXX)
: >"$LOG"

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    echo "installing $(ls .whl/*.whl | wc -l) carried wheels into /tmp/site" | tee -a "$LOG"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >>"$LOG" 2>&1 \
        || echo "wheel install failed (see above); going on" | tee -a "$LOG"
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
# The checkout root: `import gradsweep` from here finds spaces/, objectives/, search/ beside it.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

declare -A BUDGET=([tests]=100 [steps]=150 [monitor]=50 [seeds]=80 [sweep]=70)
for kv in ${GPU_CHECK_BUDGETS:-}; do BUDGET[${kv%%=*}]=${kv#*=}; done
BUDGETS=""
for part in tests steps monitor seeds sweep; do
    b=${BUDGET[$part]}
    BUDGETS="$BUDGETS${BUDGETS:+,}$part=$b"
    echo "=== part $part (budget $b s) $(date -u +%T)" | tee -a "$LOG"
    timeout -k 10 "$b" "$PY" -m benchmarks.gpu_check run "$part" --work "$WORK" --device "$DEVICE" ${GPU_CHECK_ARGS:-} >>"$LOG" 2>&1
    rc=$?
    echo "$rc" >"$WORK/$part.rc"
    echo "=== part $part rc $rc $(date -u +%T)" | tee -a "$LOG"
done
NAME=$("$PY" -c "import torch; print((torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU') + '; torch ' + torch.__version__)" 2>/dev/null || echo "?")
"$PY" -m benchmarks.gpu_check assemble --work "$WORK" --out "$OUT_DIR" --budgets "$BUDGETS" --device-name "$NAME"
rc=$?
rm -rf "$WORK"
echo "wrote $OUT_DIR/gpu_check.json, gpu_check.txt, gpu_check.log"
[ "$rc" -ne 0 ] && exit "$rc"
# exit 0 only when every part is ok; 1 when one failed or was skipped (the JSON says which)
"$PY" -c "import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))['ok'] else 1)" "$OUT_DIR/gpu_check.json"
