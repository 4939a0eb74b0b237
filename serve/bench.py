"""Load test of the API: starts `python -m serve` on 127.0.0.1, drives each endpoint with 1, 4, 16
and 64 concurrent clients for a fixed time, stops the server, writes the figures.

    python -m serve.bench                       # -> docs/tools/serving_measured.json (~3 minutes)

Each client is a closed loop (send, wait for the answer, send again); after a 503 it waits the
Retry-After the server asked for, as a well-behaved client does. Latency percentiles are over
successful answers. The server's peak resident memory (RSS) is sampled from /proc through psutil.
Only the loopback interface is used.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "tools" / "serving_measured.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m serve.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", default="1,4,16,64")
    p.add_argument("--classify-seconds", type=float, default=10.0)
    p.add_argument("--generate-seconds", type=float, default=12.0)
    p.add_argument("--steps", type=int, default=25, help="denoising steps per generated picture")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--server-args", default="", help="extra arguments for `python -m serve`")
    p.add_argument("--untrained-text-to-image", action="store_true",
                   help="serve a text-to-image model with the default architecture and untrained "
                        "weights (same arithmetic, hence the same time, as the trained one) when "
                        "the deliverable cannot be loaded")
    args = p.parse_args(argv)
    args.levels = [int(c) for c in args.concurrency.split(",")]
    if any(c < 1 for c in args.levels) or args.classify_seconds <= 0 or args.generate_seconds <= 0:
        p.error("concurrency levels and durations must be positive")
    return args


def sample_jpeg() -> bytes:
    """A 128x96 JPEG (a red shape on sky and grass), so decoding and resizing are part of the cost."""
    from PIL import Image

    a = np.zeros((96, 128, 3), np.uint8)
    a[:48] = (110, 160, 230)
    a[48:] = (70, 140, 60)
    a[36:70, 30:100] = (200, 30, 30)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeakRSS(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        import psutil

        self.proc, self.peak, self.stop = psutil.Process(pid), 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except Exception:
                return
            self.stop.wait(0.1)


def pct(values, q):
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


async def drive(base: str, endpoint: str, clients: int, seconds: float, steps: int, image: bytes) -> dict:
    import httpx

    lat, codes = [], {}
    end = time.monotonic() + seconds
    counter = iter(range(10**9))

    async def one(http):
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                if endpoint == "classify":
                    r = await http.post("/v1/classify", files={"file": ("x.jpg", image, "image/jpeg")})
                else:
                    r = await http.post("/v1/generate", json={"prompt": "a photo of a red truck",
                                                              "seed": next(counter), "steps": steps})
                code = r.status_code
            except httpx.HTTPError as exc:
                code, r = exc.__class__.__name__, None
            dt = time.perf_counter() - t0
            codes[str(code)] = codes.get(str(code), 0) + 1
            if code == 200:
                lat.append(dt)
            elif code == 503 and r is not None:
                await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), max(end - time.monotonic(), 0)))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    t0 = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=150, limits=limits) as http:
        await asyncio.gather(*(one(http) for _ in range(clients)))
    wall = time.monotonic() - t0  # includes the last answers that arrive after the window
    ok = codes.get("200", 0)
    return {"endpoint": endpoint, "clients": clients, "seconds": round(wall, 2), "ok": ok,
            "per_second": round(ok / wall, 2), "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95),
            "p99_ms": pct(lat, 99), "rejected_503": codes.get("503", 0), "timeouts_504": codes.get("504", 0),
            "errors": sum(v for k, v in codes.items() if k not in ("200", "503", "504")),
            "status_counts": codes}


def untrained_model(folder: Path) -> None:
    from trainer.deliverables import deliverable_dir
    from trainer.diffusion.config import DiffusionConfig
    from trainer.diffusion.model import TextToImage
    from trainer.diffusion.tokenizer import WordTokenizer

    tokenizer = WordTokenizer.load(deliverable_dir("text_to_image") / "vocab.json")
    TextToImage(DiffusionConfig(max_length=tokenizer.max_length), tokenizer).save(folder)


def main(argv=None) -> int:
    args = parse_args(argv)
    import httpx

    from trainer.artifacts import cpu_name

    load_start = os.getloadavg()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    extra = args.server_args.split()
    generator_note = "the text-to-image deliverable"
    if args.untrained_text_to_image:
        import tempfile

        folder = Path(tempfile.mkdtemp()) / "text2image_untrained"
        untrained_model(folder)
        extra += ["--text-to-image", str(folder)]
        generator_note = ("DiffusionConfig() defaults with untrained weights (the deliverable's "
                          "vocabulary); the time per picture depends on the architecture, not the weights")
    cmd = [sys.executable, "-m", "serve", "--port", str(port), *extra]
    server = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rss = PeakRSS(server.pid)
    rss.start()
    results, loaded = [], {}
    try:
        t0 = time.monotonic()
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the server exited: {server.stderr.read()[-2000:]}")
            try:
                m = httpx.get(base + "/metrics", timeout=2).json()
                if m["ready"]:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - t0 > 300:
                raise SystemExit("the server was not ready after 300 s")
            time.sleep(0.5)
        start_s = round(time.monotonic() - t0, 1)
        idle_rss = rss.proc.memory_info().rss
        loaded = {part: "error" not in m[part] for part in ("classify", "generate")}
        image = sample_jpeg()
        for endpoint, seconds in (("classify", args.classify_seconds), ("generate", args.generate_seconds)):
            if not loaded[endpoint]:
                results.append({"endpoint": endpoint, "skipped": m[endpoint]["error"]})
                print(f"{endpoint}: not loaded ({m[endpoint]['error']})", flush=True)
                continue
            for clients in args.levels:
                before = httpx.get(base + "/metrics").json()[endpoint]
                row = asyncio.run(drive(base, endpoint, clients, seconds, args.steps, image))
                after = httpx.get(base + "/metrics").json()[endpoint]
                batches = after["batches"] - before["batches"]
                done = sum(int(k) * v for k, v in after["batch_sizes"].items()) \
                    - sum(int(k) * v for k, v in before["batch_sizes"].items())
                row["mean_batch_size"] = round(done / batches, 2) if batches else None
                row["server_rss_mb"] = round(rss.peak / 2**20)
                results.append(row)
                print(json.dumps({k: row[k] for k in ("endpoint", "clients", "per_second", "p50_ms",
                                                      "p99_ms", "rejected_503", "errors", "mean_batch_size")}),
                      flush=True)
    finally:
        server.terminate()  # SIGTERM: uvicorn drains and exits
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        rss.stop.set()
    load_end = os.getloadavg()
    cores = os.cpu_count()
    busy = max(load_start[0], load_end[0]) > 0.5 * cores
    record = {
        "command": " ".join(["python -m serve.bench", *(sys.argv[1:] if argv is None else argv)]),
        "server": " ".join(["python -m serve", *args.server_args.split()]),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_name(), "cores": cores, "python": platform.python_version(),
                    "platform": platform.platform()},
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in load_end],
        "note": ("measured while another process used the CPU (load average above half the core count)"
                 if busy else "measured on an otherwise idle machine"),
        "classify_seconds_per_level": args.classify_seconds,
        "generate_seconds_per_level": args.generate_seconds,
        "generate_steps": args.steps,
        "text_to_image_model": generator_note,
        "startup_s": start_s,
        "server_rss_idle_mb": round(idle_rss / 2**20),
        "server_rss_peak_mb": round(rss.peak / 2**20),
        "client": ("closed-loop asyncio clients (httpx) on the same machine as the server; after a 503 "
                   "a client waits Retry-After"),
        "results": results,
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
