#!/usr/bin/env bash
# Every GPU figure tfnas's open work asks for, in one go on one GPU (under 8 minutes on an
# H200), each step's JSON written into OUT_DIR, then OUT_DIR/summary.json:
#
#   official_vs_tfnas_{fp32,auto}  the paper's supernet and tfnas's side by side, 224 px,
#                                  batch 64, 100 classes: weight and architecture step times,
#                                  images/s, peak memory (fp32: the paper's setting)
#   search_b64, search_b256        tfnas-small search steps and one search epoch, images/s
#   search_b64_deterministic       the cost of --deterministic (exact resume on CUDA)
#   train_b256                     retraining epochs of 60,000 images, seconds per epoch
#   pytest                         the GPU-relevant tests (host reads under CUDA's sync
#                                  detector, exact resume, torchrun with 2 processes)
#   lut_imagenet_b32, lut_check_b32, and _b2b
#                                  the tfnas-imagenet latency table on the GPU at batch 32
#                                  and its calibrated check against 30 whole networks (the
#                                  table's call_overhead record, and the overhead model and
#                                  fit the check chooses: CUDA's per-call overhead); then
#                                  the same with every block timed 10 calls back to back
#   lut_imagenet_b1_b2b, lut_check_b1_b2b
#                                  the same at batch 1 (launch-bound: timed back to back)
#
# GPU_CHECK_SKIP="name ..." leaves steps out (if a run overruns its 8 minutes, skip
# official_vs_tfnas_auto first); GPU_CHECK_ONLY="name ..." runs only those.
#
# Usage: bench/gpu_check.sh OUT_DIR          (on a machine with a CUDA GPU)
#        bench/gpu_check.sh OUT_DIR --smoke  (the same steps, tiny, on the CPU: checks the
#                                             script itself)
# Runs from a source checkout without installing (PYTHONPATH=src) with $PYTHON, else .venv's
# python, else python on the PATH; needs torch with CUDA,
# numpy, pyyaml, torchvision, scipy and pytest. Without the Fashion-MNIST package it writes
# a synthetic stand-in of the same shape (speed figures do not depend on the pixels; the
# summary says which data was used). A step that fails or overruns its time limit is
# recorded as failed and the script goes on.
set -uo pipefail

OUT=${1:?usage: bench/gpu_check.sh OUT_DIR [--smoke]}
SMOKE=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$ROOT"
export PYTHONPATH="$ROOT/src:$ROOT/bench${PYTHONPATH:+:$PYTHONPATH}"
export CUBLAS_WORKSPACE_CONFIG=:4096:8
# the project's own environment where there is one, else the machine's python
if [ -z "${PYTHON:-}" ] && [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; fi
PY=${PYTHON:-python}
STARTED=$(date +%s)

if [ "$SMOKE" = "--smoke" ]; then
    DEVICE=cpu; IMAGES=1400; TRAIN_LIMIT=512; STEPS=2; OFFICIAL="--batch-size 2 --resolution 64"
    OFFICIAL_STEPS="--steps 2 --warmup 1"; TRAIN_EPOCHS=1
    LUT_SPACE=tfnas-small; LUT_BATCH=1; LUT_STEP=256; LUT_ARCHS=3
else
    DEVICE=cuda; IMAGES=12000; TRAIN_LIMIT=60000; STEPS=15; OFFICIAL="--batch-size 64"
    OFFICIAL_STEPS="--steps 15 --warmup 3"; TRAIN_EPOCHS=2
    LUT_SPACE=tfnas-imagenet; LUT_BATCH=32; LUT_STEP=64; LUT_ARCHS=30
fi

# data: the real Fashion-MNIST where installed, else a synthetic one in its own format
DATA=fashion-mnist
DATA_KIND=fashion-mnist
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    DATA_KIND=synthetic
    DATA="fashion-mnist:$OUT/synthetic-fashion-mnist"
    "$PY" - "$OUT/synthetic-fashion-mnist" <<'EOF'
import gzip, struct, sys
from pathlib import Path
import numpy as np
folder = Path(sys.argv[1]); folder.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
for prefix, n in (("train", 60000), ("t10k", 10000)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(struct.pack(">II", 2049, n) + labels.tobytes())
EOF
fi

STATUS="$OUT/status.txt"
: > "$STATUS"
# step NAME LIMIT_S COMMAND...: stdout to NAME.json, stderr to NAME.log, outcome to status
step() {
    local name=$1 limit=$2; shift 2
    case " ${GPU_CHECK_SKIP:-} " in *" $name "*) return ;; esac
    if [ -n "${GPU_CHECK_ONLY:-}" ]; then
        case " $GPU_CHECK_ONLY " in *" $name "*) ;; *) return ;; esac
    fi
    local t0=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"
    local rc=$?
    echo "$name $rc $(( $(date +%s) - t0 ))" >> "$STATUS"
    echo "gpu_check: $name exit $rc in $(( $(date +%s) - t0 )) s" >&2
}

step official_vs_tfnas_fp32 90 "$PY" bench/official_vs_tfnas.py --device $DEVICE $OFFICIAL \
    $OFFICIAL_STEPS --precision fp32 --op-weights separate
step official_vs_tfnas_auto 90 "$PY" bench/official_vs_tfnas.py --device $DEVICE $OFFICIAL \
    $OFFICIAL_STEPS --precision auto --op-weights separate

# a latency table for the search benches: parameter counts stand in for times (a search
# step's cost does not depend on the table's values), built in seconds
step lut_small 60 "$PY" -c "import sys; from tests.test_latency import CountingMeter
from tfnas.latency.build import build_table; from tfnas.space import load_space
build_table(load_space('tfnas-small'), CountingMeter(), sys.argv[1], width_step=64,
            progress=False); print('{}')" "$OUT/tfnas-small-lut.json"
for batch in 64 256; do
    step search_b$batch 75 "$PY" bench/search_throughput.py --lut "$OUT/tfnas-small-lut.json" \
        --device $DEVICE --batch-size $batch --images $IMAGES --steps $STEPS --data "$DATA"
done
step search_b64_deterministic 60 "$PY" bench/search_throughput.py --no-epoch --deterministic \
    --lut "$OUT/tfnas-small-lut.json" --device $DEVICE --batch-size 64 --images $IMAGES \
    --steps $STEPS --data "$DATA"
step train_b256 90 "$PY" bench/train_throughput.py --device $DEVICE --batch-size 256 \
    --epochs $TRAIN_EPOCHS --limit $TRAIN_LIMIT --data "$DATA"

step pytest 150 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_steps.py \
    tests/test_search.py::test_search_meets_the_target_and_resumes_exactly \
    tests/test_search.py::test_torchrun_search_two_processes_agree \
    tests/test_train.py::test_resume_after_a_kill_ends_with_the_same_weights

step lut_imagenet_b32 150 "$PY" -m tfnas lut build --space $LUT_SPACE --device $DEVICE \
    --batch-size $LUT_BATCH --width-step $LUT_STEP --out "$OUT/lut-imagenet-b32.json"
step lut_check_b32 60 "$PY" -m tfnas lut check --lut "$OUT/lut-imagenet-b32.json" \
    --archs $LUT_ARCHS --calibrate --json
# the same table with blocks timed 10 calls back to back (launch latency overlapped as in a
# network): is the raw sum of blocks closer to whole networks? (one call each above)
step lut_imagenet_b32_b2b 150 "$PY" -m tfnas lut build --space $LUT_SPACE --device $DEVICE \
    --batch-size $LUT_BATCH --width-step $LUT_STEP --back-to-back 10 \
    --out "$OUT/lut-imagenet-b32-b2b.json"
step lut_check_b32_b2b 60 "$PY" -m tfnas lut check --lut "$OUT/lut-imagenet-b32-b2b.json" \
    --archs $LUT_ARCHS --calibrate --json
# batch 1: a GPU is launch-bound there, so blocks are timed back to back from the start
step lut_imagenet_b1_b2b 120 "$PY" -m tfnas lut build --space $LUT_SPACE --device $DEVICE \
    --batch-size 1 --width-step $LUT_STEP --back-to-back 10 \
    --out "$OUT/lut-imagenet-b1-b2b.json"
step lut_check_b1_b2b 60 "$PY" -m tfnas lut check --lut "$OUT/lut-imagenet-b1-b2b.json" \
    --archs $LUT_ARCHS --calibrate --json

"$PY" - "$OUT" "$DATA_KIND" "$DEVICE" "$STARTED" <<'EOF'
import json, sys, time
from pathlib import Path
out, data, device, started = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
steps = {}
for line in (out / "status.txt").read_text().splitlines():
    name, rc, seconds = line.split()
    entry = {"exit": int(rc), "seconds": int(seconds), "timed_out": rc in ("124", "137")}
    text = (out / f"{name}.json").read_text()
    try:
        entry["result"] = json.loads(text)
    except json.JSONDecodeError:
        entry["output_tail"] = text[-2000:]
        entry["log_tail"] = (out / f"{name}.log").read_text()[-2000:]
    steps[name] = entry
summary = {
    "device": device,
    "data": data,
    "seconds": int(time.time()) - started,
    "failed": [k for k, v in steps.items() if v["exit"] != 0],
    "steps": steps,
}
try:
    import torch
    summary["torch"] = torch.__version__
    if torch.cuda.is_available():
        summary["gpu"] = torch.cuda.get_device_name()
except ImportError:
    pass
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps({k: summary[k] for k in ("device", "data", "seconds", "failed")}))
EOF
