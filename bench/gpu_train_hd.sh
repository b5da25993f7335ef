#!/usr/bin/env bash
# One GPU session of the 128-pixel base heads_3d_hd (configs/base_heads_3d_hd.yaml), resumed
# across sessions. The lent machine has PyTorch but no pytorch3d, and a call carries at most
# 64 MiB, so the data set is rendered here once and a session makes two calls:
#
#   here, once (about 30 CPU-minutes; deterministic):
#     linkgan synth --kind heads_hd --num 4096 --res 128 \
#         --out .hd_data/heads_hd_n4096_r128_orbit_s0.zip
#   call 1, carry [".hd_data"]:  bash bench/gpu_train_hd.sh "$OUT" data
#   call 2, carry [".hd"]:       bash bench/gpu_train_hd.sh "$OUT"      (MINUTES=8 default)
#
# Call 1 puts the data set into the machine's cache (it stays while the machine is warm).
# Call 2 resumes the run from .hd/run.tar.part-* (the previous session's, or a new run),
# trains MINUTES more, measures FID / KID against the data, and leaves in OUT the run's
# parts to copy into .hd/ for the next session (15 MiB each), stats.jsonl, the last sample
# grid, fid.json and log.txt. .hd_data/ and .hd/ are git-ignored.
# The same commands run on a CPU with a tiny model (tests/test_gpu_scripts.py), FID_NUM=0
# skipping the FID:
#   DEVICE=cpu SETS="model.resolution=32 ..." MINUTES=0.2 bash bench/gpu_train_hd.sh OUT
set -euo pipefail
OUT=${1:?usage: gpu_train_hd.sh OUT_DIR}
CONFIG=${CONFIG:-configs/base_heads_3d_hd.yaml}
MINUTES=${MINUTES:-8}
FID_NUM=${FID_NUM:-2000}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
LINKGAN=("$PY" -m linkgan)
DATA=${DATA:-.hd_data}
PARTS=${PARTS:-.hd}
RUN=${RUN:-/tmp/heads_3d_hd}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1
CACHE=$("$PY" -c "from link_core.data import cache_dir; print(cache_dir())")
if [ "${2:-train}" = data ]; then
    mkdir -p "$CACHE" && cp -v "$DATA"/*.zip "$CACHE"/
    exit 0
fi
if ! "$PY" -c "import pytorch3d" 2> /dev/null && ! ls "$CACHE"/*.zip > /dev/null 2>&1; then
    echo "error: no data set in $CACHE and no pytorch3d here to render it: make call 1 first"
    exit 2
fi
SET=(--set "train.device=$DEVICE")
for s in ${SETS:-}; do SET+=(--set "$s"); done
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
"$PY" bench/hd_session.py unpack "$PARTS" "$RUN"
TOTAL=$("$PY" bench/hd_session.py budget "$RUN" "$MINUTES")
echo "training to $TOTAL minutes in all"
if ls "$RUN"/checkpoints/* > /dev/null 2>&1; then
    "${LINKGAN[@]}" train --out "$RUN" --resume "${SET[@]}" --set "train.minutes=$TOTAL" --no-progress
else
    "${LINKGAN[@]}" train --config "$CONFIG" --out "$RUN" "${SET[@]}" --set "train.minutes=$TOTAL" \
        --no-progress
fi
"$PY" bench/hd_session.py pack "$RUN" "$OUT"
cp "$RUN/stats.jsonl" "$OUT/stats.jsonl"
last=$(ls "$RUN"/samples/*.png 2>/dev/null | sort | tail -1 || true)
[ -n "$last" ] && cp "$last" "$OUT/samples.png"
if [ "$FID_NUM" -gt 0 ]; then
    "${LINKGAN[@]}" metrics --ckpt "$RUN" --metrics fid,kid --num "$FID_NUM" --repeats 3 \
        --out "$OUT/fid.json" --no-progress || echo "FID failed (the run's parts are in $OUT)"
fi
