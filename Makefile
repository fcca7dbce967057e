# The two set-up commands of the README: `make demo` and `make test`. Both create or reuse .venv/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
OUT ?= out/slmkit-demo

.PHONY: demo test test-lower clean arm64-check demo-model

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first: an unpinned torch can pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# llama-cpp-python compiles llama.cpp (minutes, once; pip caches the wheel).
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(PY) -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

# The main job: quantize the demo model (GGUF and ONNX, default types, calibrated on the demo's calibration split)
# and benchmark every artifact against the fp16 reference; report.json / .md / .csv and plots land in $(OUT)/bench-cpu.
demo: $(STAMP)
	$(VENV)/bin/slmkit info
	$(VENV)/bin/slmkit quantize --format gguf,onnx --calibration demo --out $(OUT)
	$(VENV)/bin/slmkit bench --device cpu --artifacts $(OUT)
	$(VENV)/bin/slmkit check $(OUT)/bench-cpu

test: $(STAMP)
	$(PY) -m pytest tests

# The lower-bound job (CI runs it after `test`): the runtime install (core + gguf, onnx, serve extras, no torch)
# pinned to the lowest versions pyproject.toml declares, running the runtime and server suites against
# artifacts the main environment quantized. devtools/lower_bounds.py says what and why.
LOWER := .venv-lower
test-lower: $(STAMP)
	rm -rf out/lower && mkdir -p out/lower
	$(PY) -m devtools.lower_bounds constraints > out/lower/constraints.txt
	$(PY) -m devtools.lower_bounds artifacts out/lower/artifacts
	$(PYTHON) -m venv $(LOWER)
	$(LOWER)/bin/python -m pip install -q --upgrade pip
	$(LOWER)/bin/python -m pip install -q -c out/lower/constraints.txt -e ".[gguf,onnx,serve]" pytest hypothesis openai
	$(LOWER)/bin/python -m pip freeze | grep -i -E "^(numpy|click|tokenizers|safetensors|llama.cpp.python|gguf|onnx|onnxruntime|fastapi|uvicorn)==" || true
	SLMKIT_TEST_ARTIFACTS=out/lower/artifacts $(LOWER)/bin/python -m pytest $$($(PY) -m devtools.lower_bounds tests)

# Not part of CI (about 2 hours on 2 CPU cores): the shipped demo model's recipe from scratch, seeded: v11's run,
# then the fine-tune that makes v15 (toolkit/demo/card_notes.md). Checkpoints in out/; rerunning resumes.
DEMO_TRAIN := out/demo-train
RESUME = $$([ -f $(1)/ckpt/state.pt ] && echo --resume)
demo-model: $(DEMO_TRAIN)-v15/model/train_log.json
$(DEMO_TRAIN)-v11/model/train_log.json: | $(STAMP)
	$(PY) -m slmkit.demo.train --out $(@D) --checkpoint $(DEMO_TRAIN)-v11/ckpt --generator 11 \
	  $(call RESUME,$(DEMO_TRAIN)-v11)
$(DEMO_TRAIN)-v15/model/train_log.json: $(DEMO_TRAIN)-v11/model/train_log.json
	$(PY) -m slmkit.demo.train --out $(@D) --checkpoint $(DEMO_TRAIN)-v15/ckpt --init $(<D) \
	  --generator 15 --examples 80000 --copy-drills 0.1 --sparse-embeddings --reset-drifted --label-margin 0.05 \
	  --steps 900 --lr 3e-4 --warmup 50 --eval-every 150 $(call RESUME,$(DEMO_TRAIN)-v15)

# Not part of CI (about 30 min, needs root for apt): slmkit's runtime on emulated arm64 cores (qemu user mode)
# against the x86 run of every artifact type; builds its environment in out/arm64 (cached). README: "arm64".
arm64-check: $(STAMP)
	BUILD_LLAMA=1 devtools/arm64/setup.sh
	$(PY) -m devtools.arm64.check

clean:
	rm -rf $(VENV) $(LOWER) out
