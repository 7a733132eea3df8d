# dlkernels. On a fresh machine (Python 3.10+, a C++ compiler, make):
#   make train    set everything up, build, and run the main job (train a ConvNet on dlkernels layers)
#   make test     set everything up, build, and run the test suite
# Everything lives in a virtual environment, $(VENV). Other targets: build, bench, wheel,
# check-cuda (compile-check the CUDA code with nvcc, no GPU needed), test-cuda-sim (the CUDA
# kernels' tests on the SIMT emulator, no GPU needed), lint, format, clean.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The development torch (a CPU build). The library is built on torch's stable ABI for 2.11, so
# the same build also runs under every later torch (.ci/run checks 2.11 and the newest).
TORCH_SPEC ?= torch==2.13.0
# The dev venv's CPU torch cannot load CUDA kernels: `build` skips them; `wheel` builds them when
# nvcc is found (DLKERNELS_CUDA=auto), so one wheel serves CPU and CUDA builds of torch.
BUILD_CUDA ?= 0
# The CUDA kernels compiled by g++ for the SIMT emulator (dlkernels._cuda_sim): auto builds them
# where g++ is, so `make test` runs the CUDA tests emulated (the cuda_sim cases).
BUILD_CUDA_SIM ?= auto
export MAX_JOBS ?= 2
PYTEST_ARGS ?=

.PHONY: setup build train test test-cuda-sim bench wheel check-cuda lint format clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet numpy ninja "setuptools>=77" wheel pytest expecttest ruff clang-format==19.1.7
	touch $@

# Incremental (ninja): only changed sources recompile.
build: setup
	DLKERNELS_CUDA=$(BUILD_CUDA) DLKERNELS_CUDA_SIM=$(BUILD_CUDA_SIM) $(PY) setup.py --quiet build_ext --inplace
	@# The checkout on the venv's path (a .pth file), so `import dlkernels` works from any directory.
	$(PY) -c "import os, sysconfig; open(os.path.join(sysconfig.get_paths()['purelib'], 'dlkernels-checkout.pth'), 'w').write(os.getcwd() + '\n')"

train: build
	$(PY) -m dlkernels train

test: build
	$(PY) -m pytest tests $(PYTEST_ARGS)

# The emulated subset: every cuda_sim case (the CUDA kernels on CPU tensors) and the emulator's
# own tests, without the sanitizer builds (`-m sanitizer`).
test-cuda-sim: build
	$(PY) -m pytest tests -m "cuda_sim and not sanitizer" $(PYTEST_ARGS)

bench: build
	$(PY) -m dlkernels bench --suite all

wheel: setup
	DLKERNELS_CUDA=$${DLKERNELS_CUDA:-auto} $(PY) -m pip wheel --no-build-isolation --no-deps --wheel-dir dist .

check-cuda: setup
	$(PY) tools/check_cuda.py

lint: setup
	$(VENV)/bin/ruff check dlkernels tests benchmarks tools setup.py
	$(VENV)/bin/ruff format --check dlkernels tests benchmarks tools setup.py
	find csrc benchmarks/cpp \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \) \
	  | xargs $(VENV)/bin/clang-format --dry-run --Werror

format: setup
	$(VENV)/bin/ruff format dlkernels tests benchmarks tools setup.py
	find csrc benchmarks/cpp \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \) \
	  | xargs $(VENV)/bin/clang-format -i

clean:
	rm -rf build dist *.egg-info dlkernels/_C*.so dlkernels/_cuda*.so dlkernels/_build_info.py
	find . -name __pycache__ -prune -exec rm -rf {} +
