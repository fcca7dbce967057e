"""The exception types slmkit raises for bad input; the CLI prints them as one line."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn


class SlmkitError(Exception):
    """A problem with the user's input or environment, described in one line (exit code 1)."""

    exit_code = 1


class UnusableInput(SlmkitError):
    """Input a gate cannot judge at all (unreadable report, bad thresholds): exit code 2, so that CI can tell
    "quality got worse" (1) from "the check itself is broken" (2)."""

    exit_code = 2


def first_line(e: BaseException, limit: int = 120) -> str:
    """A library exception as text for a one-line error: its first non-empty line (else its type's name),
    at most ``limit`` characters, non-printable characters (it may quote corrupt data) shown as "?"."""
    line = (str(e).strip().splitlines() or [type(e).__name__])[0][:limit]
    return "".join(ch if ch.isprintable() else "?" for ch in line)


def run_script(main: Callable[[], int | None]) -> NoReturn:
    """Run a ``python -m slmkit....`` script's ``main``: a SlmkitError ends as one ``error:`` line and its exit
    code, Ctrl-C as ``interrupted`` and 130, never a traceback; otherwise exit with what ``main`` returns."""
    try:
        code = main()
    except SlmkitError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
