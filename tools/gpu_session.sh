#!/usr/bin/env bash
# Everything a session on a GPU machine needs, in one call: build the CUDA extension in place with
# the machine's own python3 and CUDA torch (no downloads), run the CUDA tests, benchmark the
# activations against the device's copy bandwidth. Logs and results go to $OUT (default gpu-out/).
#   bash tools/gpu_session.sh                 # all of it
#   STAGES="build test" bash tools/gpu_session.sh
# Not yet run on a GPU: the first run will tell whether the sources build against that torch.
# opcheck needs the expecttest package; carry its wheel if the machine lacks it.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
py=${PYTHON:-python3}
stages=${STAGES:-build test bench}
mkdir -p "$out"
status=0

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$py" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"
  "$py" -c "import expecttest" 2>/dev/null || echo "expecttest missing: opcheck tests will fail"
} 2>&1 | tee "$out/machine.txt"

if [[ $stages == *build* ]]; then
  echo "== build"
  if ! DLKERNELS_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "$py" setup.py build_ext --inplace >"$out/build.log" 2>&1; then
    tail -60 "$out/build.log"
    exit 1
  fi
  "$py" -m dlkernels info | tee "$out/info.txt"
fi

if [[ $stages == *test* ]]; then
  echo "== CUDA tests"
  "$py" -m pytest tests -q -m cuda -p no:cacheprovider --junitxml="$out/cuda-tests.xml" >"$out/cuda-tests.log" 2>&1 ||
    status=1
  tail -40 "$out/cuda-tests.log"
fi

if [[ $stages == *bench* ]]; then
  echo "== activation benchmark (cuda)"
  "$py" -m dlkernels bench --suite activation --device cuda --save --out-dir "$out" >"$out/bench.log" 2>&1 || status=1
  tail -30 "$out/bench.log"
fi
exit $status
