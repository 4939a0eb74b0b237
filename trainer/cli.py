"""Shared command-line plumbing: user errors become one clear line and exit code 2."""

from __future__ import annotations

import sys

from trainer.data import DataError
from trainer.models import ModelTooLargeError

USER_ERRORS = (DataError, ModelTooLargeError, FileNotFoundError, ValueError)


def run(main, argv=None) -> int:
    try:
        return main(argv) or 0
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130
