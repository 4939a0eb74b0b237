"""The HTTP API (serve/): endpoints, every bad input's status code, overload, the micro-batcher,
and one run of the real uvicorn server on a loopback port.

Models: the committed shipped classifier (its TFLite file loads in milliseconds) and an untrained
tiny text-to-image model with the real tokenizer rules (trainer.diffusion.config.tiny_config).
"""

from __future__ import annotations

import asyncio
import base64
import io
import socket
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

httpx = pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from serve import images  # noqa: E402
from serve.app import Services, Settings, create_app  # noqa: E402
from serve.batching import Closed, MicroBatcher, QueueFull  # noqa: E402
from serve.models import TFLiteBatchRunner, classifier_info, generator_runner  # noqa: E402
from trainer.deliverables import deliverable_dir, deliverable_name  # noqa: E402

VOCAB = ["", "[UNK]", "a", "photo", "of", "red", "blue", "truck", "cat"]


# --------------------------------------------------------------------------------------------
# fixtures


def picture(fmt="PNG", size=(48, 40), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def png_bomb(width=100_000, height=100_000) -> bytes:
    """A valid 1x1 PNG whose header claims width x height pixels (a few bytes on disk)."""
    data = picture("PNG", (1, 1))
    ihdr = data[12:29]  # b"IHDR" + 13 bytes
    new = b"IHDR" + struct.pack(">II", width, height) + ihdr[12:]
    return data[:12] + new + struct.pack(">I", zlib.crc32(new)) + data[33:]


@pytest.fixture(scope="module")
def shipped():
    return classifier_info(deliverable_dir("classifier"))


@pytest.fixture(scope="module")
def tiny_generator():
    from trainer.diffusion.config import tiny_config
    from trainer.diffusion.model import TextToImage
    from trainer.diffusion.tokenizer import WordTokenizer

    config = tiny_config()
    return TextToImage(config, WordTokenizer(VOCAB, config.max_length))


class Gate:
    """Wraps a runner so a test can hold the worker inside a batch (deterministic overload)."""

    def __init__(self, run):
        self.run, self.open, self.entered = run, threading.Event(), threading.Event()
        self.open.set()

    def __call__(self, items):
        self.entered.set()
        assert self.open.wait(30), "test gate never opened"
        return self.run(items)


def make_services(shipped, generator, settings, classify_gate=None, generate_gate=None) -> Services:
    def classify_runner():
        run = TFLiteBatchRunner(shipped.path)
        return classify_gate.wrap(run) if classify_gate else run

    def generate_runner():
        run = generator_runner(generator)
        return generate_gate.wrap(run) if generate_gate else run

    classify = MicroBatcher(classify_runner, max_batch=settings.classify_max_batch,
                            max_wait_s=settings.classify_wait_ms / 1000,
                            max_queue=settings.classify_queue, name="classify").start()
    generate = MicroBatcher(generate_runner, max_batch=1, max_wait_s=0,
                            max_queue=settings.generate_queue, name="generate").start()
    return Services(classify, shipped.name, shipped.class_names, generate, "tiny",
                    generator.tokenizer, float(generator.default_guidance_scale), 0.5)


class GateFactory:
    def __init__(self):
        self.gate = None

    def wrap(self, run):
        self.gate = Gate(run)
        return self.gate


@pytest.fixture
def client_for(shipped, tiny_generator):
    made = []

    def build(**overrides):
        settings = Settings(**{"max_steps": 4, "default_steps": 2, **overrides})
        cg, gg = GateFactory(), GateFactory()
        svc = make_services(shipped, tiny_generator, settings, cg, gg)
        client = TestClient(create_app(settings, services=svc))
        client.__enter__()
        made.append(client)
        return client, svc, cg.gate, gg.gate

    yield build
    for client in made:
        client.__exit__(None, None, None)


def assert_still_answers(client):
    r = client.post("/v1/classify", files={"file": ("ok.png", picture(), "image/png")})
    assert r.status_code == 200, r.text


# --------------------------------------------------------------------------------------------
# endpoints


def test_health_ready_info_docs(client_for):
    client, *_ = client_for()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["classifier"] == deliverable_name("classifier")
    info = client.get("/v1/info").json()
    assert info["vocabulary"] == VOCAB[2:] and info["steps"]["max"] == 4
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/v1/classify", "/v1/generate"}
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("fmt,mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_classify_top5_matches_the_model(client_for, shipped, fmt, mime):
    client, *_ = client_for()
    data = picture(fmt, (64, 48), seed=3)
    r = client.post("/v1/classify", files={"file": (f"x.{fmt.lower()}", data, mime)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == deliverable_name("classifier")
    probs = [t["probability"] for t in body["top"]]
    assert len(body["top"]) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0001
    assert {t["class"] for t in body["top"]} <= set(shipped.class_names)
    assert isinstance(body["out_of_distribution"], bool)
    # the same answer as the model on the same preprocessing, one image at a time
    expected = TFLiteBatchRunner(shipped.path).predict(images.upload_to_array(data)[None])[0]
    assert body["top"][0]["class"] == shipped.class_names[int(expected.argmax())]
    assert body["top"][0]["probability"] == pytest.approx(float(expected.max()), abs=1e-5)


def test_generate_png_json_and_seed(client_for):
    client, *_ = client_for()
    req = {"prompt": "a photo of a red truck", "seed": 7, "steps": 2, "guidance": 2.0}
    r = client.post("/v1/generate", json=req)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (32, 32) and img.mode == "RGB"
    j = client.post("/v1/generate?format=json", json=req)
    assert j.status_code == 200
    assert base64.b64decode(j.json()["png_base64"]) == r.content  # same seed, same picture
    other = client.post("/v1/generate", json={**req, "seed": 8})
    assert other.content != r.content


# --------------------------------------------------------------------------------------------
# bad input: each gets its code and a one-line message; the service keeps answering


BAD_UPLOADS = {
    "not an image": (b"hello, this is text\n" * 10, "not an image"),
    "bomb": (png_bomb(), "too large"),
    "bomb 50 megapixels": (png_bomb(10_000, 5_000), "10000x5000 pixels"),
    "truncated": (picture("PNG", (64, 64))[:200], "damaged"),
    "gif": (picture("GIF"), "GIF"),
    "empty": (b"", "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_classify_bad_uploads_get_422(client_for, case):
    client, *_ = client_for()
    data, words = BAD_UPLOADS[case]
    r = client.post("/v1/classify", files={"file": ("x.png", data, "image/png")})
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"] and "\n" not in r.json()["detail"]
    assert_still_answers(client)


def test_classify_missing_file_and_oversized(client_for):
    client, *_ = client_for(max_upload_bytes=4000)
    r = client.post("/v1/classify", data={"x": "1"})
    assert r.status_code == 422 and "file" in r.json()["detail"]
    big = picture("PNG", (64, 64))  # ~12 KB of noise
    assert len(big) > 4000
    r = client.post("/v1/classify", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and "4,000 bytes" in r.json()["detail"]
    huge = b"\0" * 200_000  # refused from the Content-Length header, before parsing
    r = client.post("/v1/classify", files={"file": ("huge.png", huge, "image/png")})
    assert r.status_code == 413
    r = client.post("/v1/classify", files={"file": ("ok.png", picture("PNG", (8, 8)), "image/png")})
    assert r.status_code == 200


@pytest.mark.parametrize("body,words", [
    (b'{"prompt": "a photo of', "JSON"),
    (b'[1, 2]', "body"),
    (b'{"seed": 1}', "prompt"),
    (b'{"prompt": "a red truck", "steps": 5}', "at most 4"),
    (b'{"prompt": "a red truck", "steps": 0}', "steps"),
    (b'{"prompt": "a red truck", "guidance": -1}', "guidance"),
    (b'{"prompt": "a red truck", "guidance": 50}', "at most 20"),
    (b'{"prompt": "a red truck", "seed": -3}', "seed"),
    (b'{"prompt": "a red truck", "colour": "red"}', "colour"),
    (b'{"prompt": "   "}', "empty"),
    (b'{"prompt": "a a a a a a a a a a a a"}', "at most 10"),
    (b'{"prompt": "a photo of a green spaceship"}', "green, spaceship"),
])
def test_generate_bad_json_gets_422(client_for, body, words):
    client, *_ = client_for()
    r = client.post("/v1/generate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"] and "\n" not in r.json()["detail"]
    if "spaceship" in words:
        assert "it knows: a, photo, of, red, blue, truck, cat" in r.json()["detail"]
    assert client.post("/v1/generate", json={"prompt": "a cat", "steps": 1}).status_code == 200


# --------------------------------------------------------------------------------------------
# overload: 503 from a full queue, 504 after the timeout


def test_full_queue_answers_503_then_recovers(client_for):
    client, svc, gate, _ = client_for(classify_queue=1, classify_wait_ms=0)
    gate.open.clear()
    gate.entered.clear()
    arr = images.upload_to_array(picture())
    held = svc.classify.submit(arr)          # taken by the worker, which waits at the gate
    assert gate.entered.wait(10)
    queued = svc.classify.submit(arr)        # fills the queue of one
    r = client.post("/v1/classify", files={"file": ("x.png", picture(), "image/png")})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert "waiting" in r.json()["detail"]
    assert client.get("/metrics").json()["classify"]["rejected"] == 1
    gate.open.set()
    assert len(held.result(10)) == 10 and len(queued.result(10)) == 10
    assert_still_answers(client)


def test_generate_queue_full_and_timeout(client_for):
    client, svc, _, gate = client_for(generate_queue=1, generate_timeout_s=0.3)
    gate.open.clear()
    gate.entered.clear()
    from serve.models import GenerateJob

    held = svc.generate.submit(GenerateJob("a cat", 0, 1, 1.0))
    assert gate.entered.wait(10)
    # the queue has room for one: this request waits, times out -> 504
    r = client.post("/v1/generate", json={"prompt": "a red cat", "steps": 1})
    assert r.status_code == 504 and "0.3 s" in r.json()["detail"]
    # the abandoned request keeps its place until the worker skips it: the queue is still full
    r = client.post("/v1/generate", json={"prompt": "a red cat", "steps": 1})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    gate.open.set()
    assert held.result(30).shape == (32, 32, 3)
    assert client.post("/v1/generate", json={"prompt": "a cat", "steps": 1}).status_code == 200


def test_readyz_while_loading_and_with_a_failed_model(shipped, tiny_generator):
    release = threading.Event()
    settings = Settings(max_steps=4, default_steps=2)

    def loader(s):
        assert release.wait(30)
        svc = make_services(shipped, tiny_generator, s)
        svc.generate.close()
        svc.generate, svc.errors = None, {"generate": "ValueError: weights do not fit"}
        return svc

    with TestClient(create_app(settings, loader=loader)) as client:
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and "loading" in r.json()["detail"]
        assert client.post("/v1/classify", files={"file": ("x.png", picture(), "image/png")}).status_code == 503
        release.set()
        for _ in range(100):
            if client.get("/metrics").json()["ready"]:
                break
            time.sleep(0.05)
        r = client.get("/readyz")   # one model missing: not ready for a load balancer
        assert r.status_code == 503 and "weights do not fit" in r.json()["detail"]
        assert_still_answers(client)  # the loaded model still serves
        r = client.post("/v1/generate", json={"prompt": "a cat"})
        assert r.status_code == 503 and "not loaded" in r.json()["detail"]


# --------------------------------------------------------------------------------------------
# the micro-batcher


def test_batcher_each_request_gets_its_own_answer_and_batches_form():
    seen = []
    gate = Gate(lambda items: [x * 10 for x in items])

    def make():
        def run(items):
            seen.append(list(items))
            return gate(items)
        return run

    b = MicroBatcher(make, max_batch=8, max_wait_s=0.01, max_queue=1000).start()
    gate.open.clear()
    first = b.submit(-1)
    assert gate.entered.wait(5)      # the worker holds a batch of one; the rest queue up behind it
    futures = {}
    lock = threading.Lock()

    def client(start):
        for i in range(start, start + 25):
            f = b.submit(i)
            with lock:
                futures[i] = f

    threads = [threading.Thread(target=client, args=(k * 25,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gate.open.set()
    assert first.result(5) == -10
    assert {i: f.result(5) for i, f in futures.items()} == {i: i * 10 for i in range(100)}
    sizes = [len(s) for s in seen[1:]]
    assert sum(sizes) == 100 and max(sizes) == 8 and len(sizes) <= 14   # concurrent requests batched
    b.close()


def test_batcher_keeps_order_drains_on_close_and_refuses_after():
    seen = []
    gate = Gate(lambda items: (seen.extend(items), [x + 1 for x in items])[1])
    b = MicroBatcher(lambda: gate, max_batch=4, max_wait_s=0.005, max_queue=50).start()
    gate.open.clear()
    futures = [b.submit(i) for i in range(20)]
    assert gate.entered.wait(5)
    closer = threading.Thread(target=b.close)
    closer.start()
    time.sleep(0.05)
    with pytest.raises(Closed):
        b.submit(99)
    gate.open.set()
    closer.join(10)
    assert not closer.is_alive()
    assert [f.result(0) for f in futures] == list(range(1, 21))   # every queued request answered
    assert seen == list(range(20))                                # in arrival order


def test_batcher_queue_bound_error_and_cancel():
    gate = Gate(lambda items: [1 / x for x in items])
    b = MicroBatcher(lambda: gate, max_batch=2, max_wait_s=0, max_queue=2).start()
    gate.open.clear()
    held = b.submit(1)
    assert gate.entered.wait(5)
    skipped, bad = b.submit(2), b.submit(0)
    with pytest.raises(QueueFull):
        b.submit(3)
    assert skipped.cancel()        # a caller that gave up: the worker skips it
    gate.open.set()
    assert held.result(5) == 1.0
    with pytest.raises(ZeroDivisionError):
        bad.result(5)              # a failing batch fails its own requests only
    assert b.submit(4).result(5) == 0.25
    b.close()


def test_batcher_reports_a_runner_that_cannot_start():
    def make():
        raise FileNotFoundError("no model here")

    with pytest.raises(FileNotFoundError, match="no model here"):
        MicroBatcher(make, workers=2).start()


def test_tflite_batches_equal_single_images(shipped):
    runner = TFLiteBatchRunner(shipped.path)
    x = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3)).astype(np.uint8)
    batched = runner.predict(x)      # padded to 8
    single = np.stack([runner.predict(x[i:i + 1])[0] for i in range(5)])
    assert batched.shape == (5, 10)
    np.testing.assert_allclose(batched, single, atol=1e-5)


# --------------------------------------------------------------------------------------------
# the real server


def test_real_uvicorn_on_loopback_and_graceful_shutdown(shipped, tiny_generator):
    import uvicorn

    settings = Settings(max_steps=4, default_steps=2, max_upload_bytes=100_000)
    gg = GateFactory()
    app = create_app(settings, services=make_services(shipped, tiny_generator, settings, None, gg))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=20))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/readyz").status_code == 200
        r = http.post("/v1/classify", files={"file": ("x.jpg", picture("JPEG"), "image/jpeg")})
        assert r.status_code == 200 and len(r.json()["top"]) == 5
        assert http.post("/v1/classify", files={"file": ("x", b"junk", "image/png")}).status_code == 422
        assert http.post("/v1/generate", content=b"{", headers={"content-type": "application/json"}).status_code == 422
        r = http.post("/v1/generate", json={"prompt": "a blue cat", "seed": 1})
        assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"

        # shutdown while a generation is in flight: it is finished, then the server exits
        gate = gg.gate
        gate.open.clear()
        gate.entered.clear()
        answer = {}
        inflight = threading.Thread(target=lambda: answer.update(
            r=http.post("/v1/generate", json={"prompt": "a red truck", "seed": 2})))
        inflight.start()
        assert gate.entered.wait(10)
        server.should_exit = True
        time.sleep(0.3)
        gate.open.set()
        inflight.join(30)
        assert answer["r"].status_code == 200 and answer["r"].content[:4] == b"\x89PNG"
    thread.join(30)
    assert not thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(base + "/healthz", timeout=2)


def test_command_line_checks():
    from serve.__main__ import parse_args

    args = parse_args(["--port", "9000", "--generate-queue", "3"])
    assert (args.host, args.port, args.generate_queue) == ("127.0.0.1", 9000, 3)
    with pytest.raises(SystemExit):
        parse_args(["--classify-queue", "0"])
