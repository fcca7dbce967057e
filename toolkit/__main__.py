"""``python -m slmkit`` and the ``slmkit`` console script.

Ctrl-C at any moment, even while the CLI's modules are still importing, ends with one line and exit 130.
"""
import sys


def run() -> None:
    try:
        from slmkit.cli import main

        main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    run()
