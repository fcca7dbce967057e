"""Runs a scenario on one artifact in a fresh Python process, so that its memory figures are its own.

    python -m slmkit.benchmarks.launcher JOB.json RESULT.json     (what the parent runs)

A worker that fails or crashes (a native fault included) becomes an ``error`` for that artifact; the
benchmark of the others goes on.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from slmkit.benchmarks.scenario import Scenario, run_scenario
from slmkit.errors import SlmkitError


def launch(path: str | None, sc: Scenario, scratch: Path, name: str, reference_logits: Path | None = None,
           write_logits: Path | None = None, timeout_s: float = 1800) -> dict:
    """Run :func:`run_scenario` for ``path`` in a child process; returns its result or ``{"error": ...}``."""
    job, result = scratch / f"{name}.job.json", scratch / f"{name}.result.json"
    job.write_text(json.dumps({"path": path, "scenario": sc.to_json(),
                               "reference_logits": str(reference_logits) if reference_logits else None,
                               "write_logits": str(write_logits) if write_logits else None}))
    env = {**os.environ, "OMP_NUM_THREADS": str(sc.threads or os.cpu_count() or 1)}
    try:
        p = subprocess.run([sys.executable, "-m", "slmkit.benchmarks.launcher", str(job), str(result)],
                           capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        if p.returncode < 0:
            return {"error": f"crashed ({signal.Signals(-p.returncode).name})"}
        return {"error": lines[-1].removeprefix("error: ") if lines else f"exit code {p.returncode}"}
    return json.loads(result.read_text())


def main(argv: list[str] | None = None) -> int:
    job_file, result_file = (argv or sys.argv[1:])[:2]
    job = json.loads(Path(job_file).read_text())
    opt = {k: Path(job[k]) if job[k] else None for k in ("reference_logits", "write_logits")}
    try:
        result = run_scenario(job["path"], Scenario.from_json(job["scenario"]), **opt)
    except SlmkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    Path(result_file).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
