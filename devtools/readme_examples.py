"""Re-run the README's ``slmkit generate`` examples on a model and count the samples that keep the intent whole.

    python -m devtools.readme_examples [MODEL_OR_ARTIFACT] [--samples 4]

Each ``$ slmkit generate out/slmkit-demo "INTENT" ...`` line of README.md is run with MODEL_OR_ARTIFACT in
place of ``out/slmkit-demo`` (default: the demo model), its options kept and ``-n`` set to ``--samples``
(seeds 0 and up, as the CLI draws them). A sample keeps its intent when the output holds the intent exactly
as typed. Used to judge a candidate demo model on the examples a reader sees first (benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from slmkit.errors import run_script

README = Path(__file__).resolve().parents[1] / "README.md"
_LINE = re.compile(r"^\$ slmkit generate out/slmkit-demo (.+)$", re.M)


def examples(readme: Path = README) -> list[list[str]]:
    """The README's generate examples as argument lists after the target: ``[INTENT, option, ...]``."""
    return [shlex.split(m.group(1)) for m in _LINE.finditer(readme.read_text())]


def without_n(args: list[str]) -> list[str]:
    """``args`` less any ``-n N`` / ``--n N``."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("-n", "--n"):
            skip = True
        else:
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> None:
    from click.testing import CliRunner

    from slmkit.cli import cli

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", nargs="?", help="model folder or artifact (default: the demo model)")
    ap.add_argument("--samples", type=int, default=4)
    args = ap.parse_args(argv)
    whole = total = 0
    for ex in examples():
        intent, opts = ex[0], without_n(ex[1:])
        cmd = ["generate", *([args.target] if args.target else []), intent, *opts, "-n", str(args.samples)]
        res = CliRunner().invoke(cli, cmd)
        if res.exit_code:
            raise SystemExit(f"slmkit {shlex.join(cmd)} failed: {res.output.strip()}")
        outs = [line for line in res.stdout.splitlines() if line.strip()]
        broken = [o for o in outs if intent not in o]
        whole += not broken
        total += 1
        print(f"{len(outs) - len(broken)}/{len(outs)}  {shlex.join([intent, *opts])}")
        for o in broken:
            print(f"      {o}")
    print(f"{whole} of {total} examples kept whole in every sample")


if __name__ == "__main__":
    run_script(main)
