"""A minimal text-to-image HTTP service: request queue, micro-batching, prompt cache. Standard library only.

This is the reference shape of the "server path" in docs/DEPLOYMENT.md, small enough to read in
one sitting; a production service would put the same logic behind a real web framework and a
load balancer. Run it:

    .venv/bin/python docs/tools/serve_example.py --port 8080
    curl -s -X POST localhost:8080/generate -d '{"prompt": "a photo of a red truck", "seed": 3}' -o truck.png
    curl -s localhost:8080/metrics

Or measure it (starts the service on a free port, sends requests, writes
docs/tools/serving_measured.json, stops):

    .venv/bin/python docs/tools/serve_example.py --selftest 16

API
- POST /generate   JSON {"prompt": str, "seed": int = 0, "steps": int = 25, "guidance": float | null}
                   -> 200 image/png (32x32; X-Cache: hit|miss, X-Batch-Size)
                   -> 400 {"error": ...} for a bad prompt / seed / steps / guidance (the model's own checks)
                   -> 429 {"error": "busy"} with Retry-After when the queue is full
- GET /healthz     -> 200 "ok" once the model is loaded
- GET /metrics     -> JSON counters: requests, cache hits, queue depth, batches, mean batch size

Design, as in the document: the process is stateless apart from a cache that may be lost at any
time, so any number of copies can run behind a load balancer. One worker thread owns the model;
HTTP threads put requests on a bounded queue; the worker takes up to --max-batch requests that
arrive within --max-wait-ms and generates them in one `generate_batch` call (requests are grouped
by steps and guidance, which must be equal within a batch). Batches are padded to a power of two
and every such shape is run once at start-up: TensorFlow compiles the model once per new batch
shape, which costs seconds, and that must not happen while a user waits. The same (prompt, seed, steps,
guidance) always gives the same image, so finished PNGs are cached by that key.
"""

from __future__ import annotations

import argparse
import io
import json
import queue
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="saved_models/text2image")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--threads", type=int, default=1, help="TensorFlow threads for the worker")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-wait-ms", type=float, default=20.0)
    p.add_argument("--queue-size", type=int, default=256)
    p.add_argument("--cache-size", type=int, default=10_000)
    p.add_argument("--selftest", type=int, default=0, metavar="N",
                   help="measure with N distinct concurrent requests, then exit")
    p.add_argument("--selftest-steps", type=int, default=25)
    p.add_argument("--record", default=str(ROOT / "docs" / "tools" / "serving_measured.json"))
    return p.parse_args(argv)


class Service:
    def __init__(self, model, max_batch, max_wait_ms, queue_size, cache_size):
        self.model = model
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000.0
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.cache: OrderedDict = OrderedDict()
        self.cache_size = cache_size
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "cache_hits": 0, "rejected_busy": 0, "bad_requests": 0,
                      "batches": 0, "images_generated": 0}
        threading.Thread(target=self._worker, daemon=True).start()

    # -- request side ----------------------------------------------------------------------
    def key(self, prompt, seed, steps, guidance):
        g = self.model.default_guidance_scale if guidance is None else float(guidance)
        return (" ".join(str(prompt).lower().split()), int(seed), int(steps), g)

    def submit(self, prompt, seed=0, steps=25, guidance=None) -> tuple[bytes, dict]:
        """PNG bytes and headers; raises ValueError (bad input) or queue.Full (busy)."""
        with self.lock:
            self.stats["requests"] += 1
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 200:
            raise ValueError(f"steps must be an integer from 1 to 200, got {steps!r}")
        if not isinstance(prompt, str):
            raise ValueError("prompt must be a string")
        self.model.tokenizer.check(prompt)  # PromptError (a ValueError) before queueing
        key = self.key(prompt, seed, steps, guidance)
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                self.stats["cache_hits"] += 1
                return self.cache[key], {"X-Cache": "hit"}
        fut: Future = Future()
        self.queue.put_nowait((key, prompt, fut))  # queue.Full -> 429
        png, batch = fut.result(timeout=300)
        return png, {"X-Cache": "miss", "X-Batch-Size": str(batch)}

    # -- worker side -----------------------------------------------------------------------
    def _worker(self):
        from PIL import Image

        while True:
            items = [self.queue.get()]
            deadline = time.monotonic() + self.max_wait
            while len(items) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    items.append(self.queue.get(timeout=left))
                except queue.Empty:
                    break
            groups: dict = {}
            for item in items:  # one generate_batch per (steps, guidance)
                groups.setdefault(item[0][2:], []).append(item)
            for (steps, guidance), group in groups.items():
                size = self.bucket(len(group))  # pad: a new batch shape would cost a TF retrace (seconds)
                prompts = [p for _, p, _ in group] + [group[0][1]] * (size - len(group))
                seeds = [k[1] for k, _, _ in group] + [group[0][0][1]] * (size - len(group))
                try:
                    images = self.model.generate_batch(prompts, seeds, steps, guidance)[: len(group)]
                except Exception as exc:  # deliver the error to every waiting request
                    for _, _, fut in group:
                        fut.set_exception(exc)
                    continue
                with self.lock:
                    self.stats["batches"] += 1
                    self.stats["images_generated"] += len(group)
                for (key, _, fut), img in zip(group, images):
                    buf = io.BytesIO()
                    Image.fromarray(img).save(buf, format="PNG")
                    png = buf.getvalue()
                    with self.lock:
                        self.cache[key] = png
                        while len(self.cache) > self.cache_size:
                            self.cache.popitem(last=False)
                    fut.set_result((png, len(group)))

    def bucket(self, n: int) -> int:
        """The smallest power of two >= n (capped at max_batch): the only batch shapes ever run."""
        size = 1
        while size < n:
            size *= 2
        return min(size, max(self.max_batch, n))

    def warm_up(self, steps: int = 2) -> float:
        """Traces every bucket shape once, before traffic arrives; returns the seconds it took."""
        t0 = time.perf_counter()
        size = 1
        while size <= self.max_batch:
            self.model.generate_batch(["a photo of a cat"] * size, list(range(size)), steps)
            size *= 2
        return time.perf_counter() - t0

    def metrics(self) -> dict:
        with self.lock:
            out = dict(self.stats)
        out["queue_depth"] = self.queue.qsize()
        out["cache_entries"] = len(self.cache)
        out["mean_batch_size"] = round(out["images_generated"] / out["batches"], 2) if out["batches"] else None
        return out


def make_handler(service: Service):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, code, body: bytes, ctype="application/json", headers=None):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/healthz":
                self._send(200, b"ok", "text/plain")
            elif self.path == "/metrics":
                self._send(200, json.dumps(service.metrics()).encode())
            else:
                self._send(404, b'{"error": "not found"}')

        def do_POST(self):
            if self.path != "/generate":
                return self._send(404, b'{"error": "not found"}')
            try:
                length = int(self.headers.get("Content-Length", 0))
                if length > 10_000:
                    raise ValueError("request body too large")
                req = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(req, dict):
                    raise ValueError("send a JSON object")
                png, headers = service.submit(req.get("prompt"), req.get("seed", 0), req.get("steps", 25),
                                              req.get("guidance"))
                self._send(200, png, "image/png", headers)
            except queue.Full:
                with service.lock:
                    service.stats["rejected_busy"] += 1
                self._send(429, b'{"error": "busy, retry shortly"}', headers={"Retry-After": "1"})
            except ValueError as exc:  # includes PromptError and bad JSON
                with service.lock:
                    service.stats["bad_requests"] += 1
                self._send(400, json.dumps({"error": str(exc)}).encode())

    return Handler


def selftest(args, service: Service, server) -> dict:
    import urllib.error
    import urllib.request

    url = f"http://{args.host}:{server.server_address[1]}"

    def post(body):
        req = urllib.request.Request(url + "/generate", data=json.dumps(body).encode(), method="POST")
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                r.read()
                return r.status, time.perf_counter() - t0, r.headers.get("X-Cache"), r.headers.get("X-Batch-Size")
        except urllib.error.HTTPError as e:
            return e.code, time.perf_counter() - t0, None, None

    from trainer.data import CLASS_NAMES

    n, steps = args.selftest, args.selftest_steps
    bodies = [{"prompt": f"a photo of a {CLASS_NAMES[i % 10]}", "seed": 500 + i, "steps": steps} for i in range(n)]
    post({"prompt": "a photo of a cat", "seed": 1, "steps": steps})  # a first request end to end

    out = {"requests": n, "steps": steps, "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms}
    # 1. one at a time: what a service without batching does
    t0 = time.perf_counter()
    seq = [post(dict(b, seed=b["seed"] + 10_000)) for b in bodies]
    out["sequential"] = {"wall_s": round(time.perf_counter() - t0, 2),
                         "images_per_s": round(n / (time.perf_counter() - t0), 2),
                         "median_latency_s": round(float(np.median([s[1] for s in seq])), 3)}
    # 2. all at once: the worker batches them
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        conc = list(pool.map(post, bodies))
    wall = time.perf_counter() - t0
    out["concurrent_batched"] = {"wall_s": round(wall, 2), "images_per_s": round(n / wall, 2),
                                 "median_latency_s": round(float(np.median([c[1] for c in conc])), 3),
                                 "batch_sizes_seen": sorted({int(c[3]) for c in conc if c[3]})}
    # 3. the same requests again: all cache hits
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        again = list(pool.map(post, bodies))
    out["repeated_cache"] = {"wall_s": round(time.perf_counter() - t0, 3),
                             "hits": sum(1 for a in again if a[2] == "hit"),
                             "median_latency_s": round(float(np.median([a[1] for a in again])), 4)}
    # 4. a bad prompt and an overlong one
    out["bad_prompt_status"] = post({"prompt": "   "})[0]
    out["overlong_prompt_status"] = post({"prompt": "a " * 40})[0]
    out["metrics_endpoint"] = service.metrics()
    return out


def main(argv=None):
    args = parse_args(argv)
    from trainer.diffusion.train import set_threads
    set_threads(args.threads)
    from trainer.diffusion import load_text_to_image

    model = load_text_to_image(args.model)
    service = Service(model, args.max_batch, args.max_wait_ms, args.queue_size, args.cache_size)
    warm_s = service.warm_up()
    print(f"model loaded and warmed up for batch sizes up to {args.max_batch} in {warm_s:.1f} s", flush=True)
    server = ThreadingHTTPServer((args.host, 0 if args.selftest else args.port), make_handler(service))
    if not args.selftest:
        print(f"serving on http://{args.host}:{server.server_address[1]}", flush=True)
        server.serve_forever()
        return
    threading.Thread(target=server.serve_forever, daemon=True).start()
    import os
    from datetime import datetime, timezone
    result = selftest(args, service, server)
    result.update({"warm_up_s": round(warm_s, 1), "threads": args.threads, "cores": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
                   "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model": args.model})
    server.shutdown()
    Path(args.record).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print(f"wrote {args.record}")


if __name__ == "__main__":
    main()
