#!/usr/bin/env bash
# One short GPU session for the speed comparison with NVIDIA's code (issue: training speed).
# Run it on a lent GPU from the repository root, with NVIDIA's public trees copied to the
# git-ignored .nvlabs/ (they are never committed) and carried to the machine:
#
#   mkdir -p .nvlabs && cp -r /path/to/stylegan2-ada-pytorch .nvlabs/sg2 \
#       && cp -r /path/to/eg3d/eg3d .nvlabs/eg3d
#   bash bench/gpu_parity.sh OUT_DIR           # writes OUT_DIR/parity_step_cuda.json
#
# The same command runs on a CPU with DEVICE=cpu (batch 1-2, the tiny configs first), which
# is how this script is checked without a GPU.
set -euo pipefail
OUT=${1:-bench/results}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python}
mkdir -p "$OUT"
CONFIGS=${CONFIGS:-sg2_tiny,eg3d_tiny,sg2_ffhq256,eg3d_ffhq512_r64,eg3d_ffhq512_r128}
NV=()
[ -d .nvlabs/sg2 ] && NV+=(--nvlabs-sg2 .nvlabs/sg2)
[ -d .nvlabs/eg3d ] && NV+=(--nvlabs-eg3d .nvlabs/eg3d)
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout "${LIMIT_S:-480}" "$PY" bench/parity_step.py --config "$CONFIGS" --device "$DEVICE" \
    --repeats "${REPEATS:-5}" "${NV[@]}" --out "$OUT/parity_step_$DEVICE.json"
