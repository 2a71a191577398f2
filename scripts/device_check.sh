#!/usr/bin/env bash
# Check what a lent GPU does with msGFM in under 10 minutes: ONNX Runtime CUDA parity on every
# bundled model, torch pretraining throughput (lite, small, base; fp32 and bf16), DDP over NCCL and
# a pretraining run whose checkpoint stays under OUT. Without a GPU each GPU part is reported as
# skipped with the reason. See scripts/device_check.py for the parts and their options.
#
#   scripts/device_check.sh OUT [--budget-s 540] [--parts ...] [--data-root SAMPLES]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ $# -lt 1 || "$1" == -* ]]; then
    echo "usage: scripts/device_check.sh OUT [options of scripts/device_check.py]" >&2
    exit 2
fi
PYTHON="${MSGFM_PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON="python3"; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# The Python script keeps to its own budget; this is the hard stop of the 10-minute slot.
exec timeout --signal=TERM --kill-after=10 590 "$PYTHON" "$ROOT/scripts/device_check.py" "$@"
