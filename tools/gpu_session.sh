#!/usr/bin/env bash
# Everything a GPU machine run needs, in one call, from the wheel built on a CPU machine (no
# compiling, no downloads there): install dist/dlkernels-*.whl (and dist/expecttest-*.whl, which
# opcheck needs, if the machine lacks it) into the machine's own python with its CUDA torch, run
# the CUDA test cases against the installed package, then benchmark against torch on the GPU.
# Logs, JUnit XML and the benchmark JSON go to $OUT (default gpu-out/).
#
# Prepare on the CPU machine:  make wheel && .venv/bin/pip download --no-deps -d dist expecttest
# Then on the GPU machine:     bash tools/gpu_session.sh          (STAGES="install test" to skip bench)
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${OUT:-gpu-out}")
py=${PYTHON:-python3}
stages=${STAGES:-install test bench}
mkdir -p "$out"
status=0

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$py" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"
} 2>&1 | tee "$out/machine.txt"

if [[ $stages == *install* ]]; then
  echo "== install the prebuilt wheel"
  wheel=$(ls dist/dlkernels-*.whl 2>/dev/null | head -1)
  if [[ -z $wheel ]]; then
    echo "no dist/dlkernels-*.whl: build it on the CPU machine with 'make wheel' and bring dist/" >&2
    exit 1
  fi
  "$py" -c "import expecttest" 2>/dev/null ||
    "$py" -m pip install --quiet --no-index --no-deps dist/expecttest-*.whl ||
    echo "expecttest missing: opcheck tests will fail"
  "$py" -m pip install --quiet --no-index --no-deps --force-reinstall "$wheel" >"$out/install.log" 2>&1 || {
    tail -20 "$out/install.log"
    exit 1
  }
  (cd /tmp && "$py" -m dlkernels info) | tee "$out/info.txt"
fi

if [[ $stages == *test* ]]; then
  echo "== CUDA tests (installed package)"
  # A copy of tests/ outside the checkout, so `import dlkernels` finds the installed wheel.
  tests=$(mktemp -d)/tests
  cp -r tests "$tests"
  (cd "$(dirname "$tests")" && "$py" -m pytest tests -q -m cuda -p no:cacheprovider \
    --junitxml="$out/cuda-tests.xml" >"$out/cuda-tests.log" 2>&1) || status=1
  tail -40 "$out/cuda-tests.log"
  echo "== CUDA randomized sweeps at other seeds (DLKERNELS_TEST_SEED, tests/helpers.py fuzz_seed)"
  for seed in ${FUZZ_SEEDS:-1 2 3 4}; do
    (cd "$(dirname "$tests")" && DLKERNELS_TEST_SEED=$seed "$py" -m pytest tests -q -m cuda -k randomized \
      -p no:cacheprovider >"$out/cuda-fuzz-$seed.log" 2>&1) || { status=1; echo "seed $seed failed"; }
  done
fi

if [[ $stages == *bench* ]]; then
  echo "== benchmark (cuda): the GEMM core, each tile and the rule, and linear, in bfloat16 and float32"
  (cd /tmp && "$py" -m dlkernels bench --suite gemm,linear --quick --device cuda --dtype bfloat16,float32 \
    --json "$out/bench-cuda-gemm.json") >"$out/bench-gemm.log" 2>&1 || status=1
  tail -60 "$out/bench-gemm.log"
  echo "== benchmark (cuda): every suite, float32"
  (cd /tmp && "$py" -m dlkernels bench --quick --device cuda --json "$out/bench-cuda.json") \
    >"$out/bench.log" 2>&1 || status=1
  tail -40 "$out/bench.log"
fi
exit $status
