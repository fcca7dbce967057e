"""slmkit: deploy small GPT-2 language models to desktop and mobile-class CPUs."""
from __future__ import annotations

from slmkit.errors import SlmkitError

__version__ = "0.1.0"

__all__ = ["SlmkitError", "__version__"]
