# make install | make data | make train | make test | make test-fast | make lint
VENV ?= .venv
PY := $(VENV)/bin/python
# On machines that keep a local CPU wheel of torch (as this project's CI does), use it.
TORCH_SPEC := $(if $(wildcard /opt/wheels/torch-2.13.0*),torch==2.13.0,torch>=2.4)
UV_FLAGS := --compile-bytecode $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
export DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),$(CURDIR)/data)
# Only when the folder exists: tiktoken reads an empty TIKTOKEN_CACHE_DIR as "do not cache".
ifneq ($(wildcard $(DATA_DIR)/tiktoken),)
export TIKTOKEN_CACHE_DIR ?= $(DATA_DIR)/tiktoken
endif

.PHONY: install data train train-cpu test test-fast lint

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip install --python $(PY) $(UV_FLAGS) "$(TORCH_SPEC)" -e ".[dev,sweeps,slurm,pretrained]"
	touch $@

install: $(VENV)/.installed

data: install           ## fetch (if missing) and check every corpus into DATA_DIR: Tiny Shakespeare, Multi30k, GPT-2 BPE
	$(PY) -m datamodules.corpora "$(DATA_DIR)"

RECIPE ?= auto
train: install          ## the main job for this machine: the GPU recipe with CUDA, else the CPU one (RECIPE=gpu|cpu, ARGS=...)
	@experiment=$$($(PY) -m training.recipe $(RECIPE)) && $(PY) train.py experiment=$$experiment $(ARGS)

train-cpu: install      ## the 2-core CPU recipe (~2 min; the classic AdamW one: experiment=shakespeare_char_cpu, ~5 min)
	$(PY) train.py experiment=shakespeare_char_modern $(ARGS)

# pytest-xdist: one worker per core (JOBS=0: no workers, the suite in this process); a test module stays on one worker (its fixtures).
JOBS ?= auto
test: install           ## the whole suite CI runs (tests needing a real corpus skip without it: make data)
	$(PY) -m pytest -q -n $(JOBS) --dist loadscope $(ARGS)

test-fast: install      ## the unit tests: everything but the end-to-end subprocess runs (marked slow)
	$(PY) -m pytest -q -n $(JOBS) --dist loadscope -m "not slow" $(ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
