# make install | make train | make test | make lint
VENV ?= .venv
PY := $(VENV)/bin/python
# On machines that keep a local CPU wheel of torch (as this project's CI does), use it.
TORCH_SPEC := $(if $(wildcard /opt/wheels/torch-2.13.0*),torch==2.13.0,torch>=2.4)
UV_FLAGS := --compile-bytecode $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
export DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),$(CURDIR)/data)
export TIKTOKEN_CACHE_DIR ?= $(if $(wildcard $(DATA_DIR)/tiktoken),$(DATA_DIR)/tiktoken,)

.PHONY: install train train-cpu test test-all lint

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip install --python $(PY) $(UV_FLAGS) "$(TORCH_SPEC)" -e ".[dev,sweeps,slurm,pretrained]"
	touch $@

install: $(VENV)/.installed

train: install          ## the main job (override with ARGS="model=gpt2 trainer=ddp")
	$(PY) train.py $(ARGS)

train-cpu: install      ## the 2-core CPU recipe (~5 min)
	$(PY) train.py experiment=shakespeare_char_cpu $(ARGS)

test: install           ## the whole suite CI runs
	$(PY) -m pytest -q $(ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
