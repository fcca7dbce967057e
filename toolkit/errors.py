"""The exception types slmkit raises for bad input; the CLI prints them as one line."""
from __future__ import annotations


class SlmkitError(Exception):
    """A problem with the user's input or environment, described in one line (exit code 1)."""

    exit_code = 1


class UnusableInput(SlmkitError):
    """Input a gate cannot judge at all (unreadable report, bad thresholds): exit code 2, so that CI can tell
    "quality got worse" (1) from "the check itself is broken" (2)."""

    exit_code = 2
