"""The lower-bound job: the runtime install (no torch) at the lowest versions pyproject.toml declares.

A desktop app installs ``slmkit[gguf,onnx,serve]``; that is the install whose ranges users meet. This job
pins every library of the core and those extras to its declared lower bound, installs that into its own
environment, and runs the runtime suite there against artifacts the main environment wrote (quantizing
needs torch; running them must not):

    python -m devtools.lower_bounds constraints            # the pins, from pyproject.toml
    python -m devtools.lower_bounds artifacts DIR          # the demo model's test artifacts (main .venv)

``make test-lower`` (and CI) runs the whole job. The convert extra's own bounds (transformers 5.24 pins
tokenizers >= 0.23.1 and safetensors >= 0.8) are what the main suite installs.
"""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNTIME_EXTRAS = ("gguf", "onnx", "serve")
TESTS = ["tests/test_runtime_contract.py", "tests/test_runtime_sequences.py", "tests/test_sampling.py",
         "tests/test_serve.py", "tests/test_serve_faults.py"]


def lower_bounds(extras: tuple[str, ...] = RUNTIME_EXTRAS) -> dict[str, str]:
    """``name -> lowest declared version`` for the core dependencies and ``extras``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [r for e in extras for r in project["optional-dependencies"][e]]
    pins: dict[str, str] = {}
    for req in reqs:
        req, _, marker = req.partition(";")
        if "win32" in marker or "darwin" in marker:
            continue  # another platform's dependency
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)", req)
        low = re.search(r">=\s*([0-9][0-9a-z.]*)", m.group(3)) if m else None
        if low is None:
            raise SystemExit(f"lower_bounds: {req.strip()!r} declares no lower bound")
        pins[m.group(1).lower()] = low.group(1)
    return pins


def write_artifacts(out: Path) -> None:
    """The demo model as the runtime tests use it (tests/conftest.py's demo_artifacts)."""
    from tests.conftest import quantize_ok

    out.mkdir(parents=True, exist_ok=True)
    quantize_ok(None, out, "--quant", "f16,q8_0,q4_k_m,q4_0")
    quantize_ok(None, out, "--format", "onnx", "--quant", "fp32,int8,int4")


def main() -> None:
    if sys.argv[1:2] == ["constraints"]:
        print("".join(f"{name}=={version}\n" for name, version in sorted(lower_bounds().items())), end="")
    elif sys.argv[1:2] == ["artifacts"] and len(sys.argv) == 3:
        write_artifacts(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["tests"]:
        print(" ".join(TESTS))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
