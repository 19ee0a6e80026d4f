# nmt: two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MULTI30K_DIR ?= ../shared/data/multi30k
MINUTES ?= 60
SRC ?= de
TGT ?= en
OUT ?= benchmarks/work/multi30k-$(SRC)-$(TGT)
LESSON ?= all
ABLATION_MINUTES ?= 8
# make bench-serve: the run folder that make bench-quality trains (or SERVE_MODEL=RUN)
SERVE_MODEL ?= benchmarks/work/multi30k-de-en/run

.PHONY: install test test-fast demo lessons lint format bench bench-quality bench-ablation bench-speed \
	bench-serve bench-gpu bench-scale clean

install: $(VENV)/.installed

# torch==2.13.0 first: the local CPU wheel (an open range would pull a multi-GB CUDA build).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,plot,serve]'
	touch $@

test: install
	$(PY) -m pytest -q tests

test-fast: install
	$(PY) -m pytest -q -m "not slow" tests

demo: install
	PATH=$(abspath $(VENV))/bin:$$PATH bash examples/demo.sh

# The classic experiments of examples/lessons/ (LESSON=bottleneck|reverse|cells|sampling|all).
lessons: install
	$(PY) examples/lessons/lessons.py $(LESSON)

lint: install
	$(VENV)/bin/ruff format --check nmt_cli tests examples benchmarks
	$(VENV)/bin/ruff check nmt_cli tests examples benchmarks
	$(VENV)/bin/mypy nmt_cli

format: install
	$(VENV)/bin/ruff format nmt_cli tests examples benchmarks
	$(VENV)/bin/ruff check --fix nmt_cli tests examples benchmarks

bench: bench-speed bench-quality

bench-quality: install
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) benchmarks/quality.py --data $(MULTI30K_DIR) \
		--minutes $(MINUTES) --src $(SRC) --tgt $(TGT) --out $(OUT)

# One change at a time against examples/multi30k-de-en.yaml, ABLATION_MINUTES each, two at a time.
bench-ablation: install
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) benchmarks/ablation.py --data $(MULTI30K_DIR) \
		--minutes $(ABLATION_MINUTES) --threads 1 --parallel 2

bench-speed: install
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) benchmarks/speed.py --data $(MULTI30K_DIR)

# One CUDA GPU, under 8 minutes: training/translation speed, peak memory, DDP check (skips without CUDA).
bench-gpu: install
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) benchmarks/gpu.py --data $(MULTI30K_DIR)

# `nmt serve` under load: a real HTTP client at concurrency 1, 8 and 64 (greedy).
bench-serve: install
	$(PY) benchmarks/serve_load.py --model $(SERVE_MODEL) --data $(MULTI30K_DIR)

# preprocess and train at 29 k, 1 M and 10 M pairs (synthetic, from Multi30k); SCALE_SIZES=29k,1M
SCALE_SIZES ?= 29k,1M,10M
bench-scale: install
	$(PY) benchmarks/scale.py --data $(MULTI30K_DIR) --sizes $(SCALE_SIZES)

clean:
	rm -rf $(VENV) demo benchmarks/work .pytest_cache .mypy_cache .ruff_cache
