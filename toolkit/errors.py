"""The one exception type slmkit raises for bad input; the CLI prints it as one line."""
from __future__ import annotations


class SlmkitError(Exception):
    """A problem with the user's input or environment, described in one line."""
