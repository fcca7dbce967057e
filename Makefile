# The two set-up commands of the README: `make demo` and `make test`. Both create or reuse .venv/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT ?= out/slmkit-demo

.PHONY: demo test clean arm64-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first: an unpinned torch can pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# llama-cpp-python compiles llama.cpp (minutes, once; pip caches the wheel).
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(PY) -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

# The main job: quantize the demo model (GGUF and ONNX, default types) and benchmark every artifact
# against the fp16 reference; report.json / .md / .csv and plots land in $(OUT)/bench-cpu.
demo: $(STAMP)
	$(VENV)/bin/slmkit info
	$(VENV)/bin/slmkit bench --device cpu --artifacts $(OUT)
	$(VENV)/bin/slmkit check $(OUT)/bench-cpu

test: $(STAMP)
	$(PY) -m pytest tests

# Not part of CI (about 30 min, needs root for apt): slmkit's runtime on emulated arm64 cores (qemu user mode)
# against the x86 run of every artifact type; builds its environment in out/arm64 (cached). README: "arm64".
arm64-check: $(STAMP)
	BUILD_LLAMA=1 devtools/arm64/setup.sh
	$(PY) -m devtools.arm64.check

clean:
	rm -rf $(VENV) out
