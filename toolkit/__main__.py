"""``python -m slmkit`` and the ``slmkit`` console script.

Ctrl-C at any moment, even while the CLI's modules are still importing, ends with one line and exit 130.
"""
import sys


def run() -> None:
    code: int | str | None = 0
    try:
        from slmkit.errors import record_interrupts

        record_interrupts()
        from slmkit.cli import main

        main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit as e:  # click ends every command with one; the CLI reports a Ctrl-C it sees itself
        code = e.code
    from slmkit.errors import interrupted

    if code in (0, None) and interrupted():  # a Ctrl-C that Python swallowed (in a __del__, say) still counts
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)


if __name__ == "__main__":
    run()
