"""The exception types slmkit raises for bad input; the CLI prints them as one line."""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


_INTERRUPTED = threading.Event()


def _record_interrupt(signum: int, frame: object) -> None:
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def record_interrupts() -> None:
    """Python's Ctrl-C handler, remembering that it fired: a KeyboardInterrupt raised where Python swallows it
    (an object's ``__del__``, seen in the regex package during a quantize; a ctypes callback) is then not lost,
    since :func:`interrupted` still says so when the command ends. Only the main thread's default handler is
    replaced."""
    if threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _record_interrupt)
        sys.unraisablehook = _quiet_interrupts(sys.unraisablehook)


def _quiet_interrupts(hook):
    """Python prints a traceback for a KeyboardInterrupt it swallows (in a ``__del__``); it is recorded, and the
    command ends "interrupted", so it is not printed. Any other unraisable exception goes to ``hook``."""
    def quiet(unraisable) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            hook(unraisable)
    return quiet


def interrupted() -> bool:
    """Whether a Ctrl-C reached this process since :func:`record_interrupts` (raised, held or swallowed)."""
    return _INTERRUPTED.is_set()


def run_script(main: Callable[[], int | None]) -> NoReturn:
    """Run a ``python -m slmkit....`` script's ``main``: a SlmkitError ends as one ``error:`` line and its exit
    code, Ctrl-C as ``interrupted`` and 130 (also one that Python swallowed on the way), never a traceback;
    otherwise exit with what ``main`` returns."""
    record_interrupts()
    try:
        code = main()
    except SlmkitError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:  # also one no handler of ours saw (an ignored SIGINT, a raise): it counts all the same
        code = None
        _INTERRUPTED.set()
    if interrupted():
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


@contextmanager
def held_interrupt() -> Iterator[None]:
    """Hold a Ctrl-C that lands inside the block and raise KeyboardInterrupt as it ends.

    For native calls that call back into Python: llama-cpp-python logs through a ctypes callback, and a
    KeyboardInterrupt raised inside a callback is swallowed ("Exception ignored on calling ctypes callback
    function"), so a Ctrl-C during llama.cpp's quantize was lost and the command ran on and exited 0. Only the
    main thread's default handler is replaced; an ignored SIGINT or an application's own handler is left alone.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() \
            or previous not in (signal.default_int_handler, _record_interrupt):
        yield
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        _INTERRUPTED.set()
        raise KeyboardInterrupt
