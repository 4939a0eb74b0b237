"""python -m serve: start the HTTP API on the deliverable models (see serve/app.py)."""

from __future__ import annotations

import argparse
import logging

from serve.app import Settings


def parse_args(argv=None):
    d = Settings()
    p = argparse.ArgumentParser(prog="python -m serve", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to listen on every interface (containers)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, default=d.threads,
                   help="threads per TFLite interpreter and for TensorFlow's generator (default 1)")
    p.add_argument("--classify-queue", type=int, default=d.classify_queue,
                   help="classify requests that may wait; more get 503")
    p.add_argument("--classify-max-batch", type=int, default=d.classify_max_batch)
    p.add_argument("--classify-wait-ms", type=float, default=d.classify_wait_ms,
                   help="how long the first request of a batch waits for others")
    p.add_argument("--classify-workers", type=int, default=d.classify_workers)
    p.add_argument("--generate-queue", type=int, default=d.generate_queue,
                   help="generate requests that may wait; more get 503")
    p.add_argument("--generate-workers", type=int, default=d.generate_workers)
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_bytes / 2**20)
    p.add_argument("--text-to-image", metavar="DIR",
                   help="serve this text-to-image model folder instead of the deliverable")
    p.add_argument("--int8", action="store_true", help="serve the int8 TFLite classifier")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="seconds to finish requests in flight after SIGTERM/Ctrl-C")
    args = p.parse_args(argv)
    for name in ("threads", "classify_queue", "classify_max_batch", "classify_workers",
                 "generate_queue", "generate_workers"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= args.classify_wait_ms <= 1000 or args.max_upload_mb <= 0:
        p.error("--classify-wait-ms must be 0-1000 and --max-upload-mb positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import uvicorn

    from serve.app import create_app, load_services
    from trainer.runtime import configure

    configure(threads=args.threads)  # before the first TensorFlow op
    settings = Settings(threads=args.threads, classify_queue=args.classify_queue,
                        classify_max_batch=args.classify_max_batch,
                        classify_wait_ms=args.classify_wait_ms, classify_workers=args.classify_workers,
                        generate_queue=args.generate_queue, generate_workers=args.generate_workers,
                        max_upload_bytes=int(args.max_upload_mb * 2**20))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    variant = "int8" if args.int8 else "float32"
    app = create_app(settings, loader=lambda s: load_services(s, variant, args.text_to_image))
    uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=args.graceful_timeout,
                log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
