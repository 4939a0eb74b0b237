"""Shared command-line plumbing: argument types, and user errors as one clear line with exit code 2."""

from __future__ import annotations

import argparse
import sys

from trainer.data import DataError

# ValueError covers the library's own refusals (bad names, oversized models, unreadable checkpoints).
USER_ERRORS = (DataError, FileNotFoundError, ValueError)


def run(main, argv=None, interrupted: str = "interrupted") -> int:
    """Runs a command's main; `interrupted` is what Ctrl-C prints (say what survives, and only that)."""
    try:
        return main(argv) or 0
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (batch sizes, epochs, step and run counts)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def output_file(*suffixes: str):
    """argparse type factory: a file to write, with one of `suffixes`, in an existing folder."""
    def parse(text: str):
        from trainer.paths import BadPathError, check_output_file

        try:
            return check_output_file(text, suffixes, what="file")
        except BadPathError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def plain_name(text: str) -> str:
    """argparse type: a name that becomes one folder (see trainer.paths.check_name)."""
    from trainer.paths import BadPathError, check_name

    try:
        return check_name(text, what="name")
    except BadPathError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
