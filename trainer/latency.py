"""Single-thread CPU latency, ms per image at batch 1, of a saved classifier (trainer.timing measures).

    python -m trainer.latency saved_models/<name> --runs 200 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trainer import cli


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m trainer.latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("--runs", type=cli.positive_int, default=200)
    p.add_argument("--warmup", type=cli.non_negative_int, default=20)
    p.add_argument("--no-tta", action="store_true", help="skip the test-time-augmentation timings (flip, 6-view)")
    p.add_argument("--json", action="store_true", help="print one JSON line (for other programs)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from trainer import runtime

    runtime.configure(threads=1)  # before any TF op: our targets are for one thread
    from trainer.timing import measure

    result = measure(args.model_dir, args.runs, args.warmup, flip_tta=not args.no_tta)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if isinstance(value, dict):
                print(f"{key:16s} median {value['median']:.3f} ms   p90 {value['p90']:.3f} ms   ({value['runs']} runs)")
        print(f"CPU: {result['cpu']}, {result['threads']} thread, batch 1")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
