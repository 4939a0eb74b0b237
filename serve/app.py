"""The FastAPI application: endpoints, limits and the answer to every kind of bad input.

    POST /v1/classify   multipart `file` (PNG/JPEG/WebP) -> top-5 classes, probabilities, model
    POST /v1/generate   JSON {prompt, seed, steps, guidance} -> PNG (or base64 with ?format=json)
    GET  /healthz       the process answers          GET /readyz   the models are loaded
    GET  /metrics       queue depths and batch sizes (the autoscaling signal)
    GET  /docs          OpenAPI page

Status codes: 413 upload too large, 422 not an image / decompression bomb / malformed JSON /
out-of-range field / unknown words, 503 + Retry-After when a queue is full or the models are not
loaded yet, 504 when a request waited longer than its timeout. Every error body is
{"detail": "<one line>"}, and no bad input stops the service.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from serve import images
from serve.batching import Closed, MicroBatcher, QueueFull

log = logging.getLogger("serve")


@dataclass
class Settings:
    """Limits and queue sizes; `python -m serve --help` sets them."""

    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = images.MAX_IMAGE_PIXELS
    classify_max_batch: int = 32
    classify_wait_ms: float = 5.0
    classify_queue: int = 256
    classify_workers: int = 1          # each owns one TFLite interpreter
    classify_timeout_s: float = 10.0
    generate_workers: int = 1
    generate_batch: int = 1            # >1 batches equal-settings prompts (TF prepares each new shape once)
    generate_queue: int = 8
    generate_timeout_s: float = 120.0
    max_steps: int = 100
    default_steps: int = 50
    max_guidance: float = 20.0
    threads: int = 1                   # TFLite threads per interpreter
    retry_after_s: int = 1
    top_k: int = 5


@dataclass
class Services:
    """What the endpoints use, built by a loader (real models) or by a test (fixture models)."""

    classify: MicroBatcher | None      # None when the classifier failed to load (see errors)
    classifier_name: str
    class_names: tuple
    generate: MicroBatcher | None      # None when the text-to-image model failed to load
    generator_name: str
    tokenizer: Any = None              # trainer.diffusion.tokenizer.WordTokenizer
    default_guidance: float = 3.0
    ood_threshold: float | None = None
    errors: dict = field(default_factory=dict)   # {"classify"|"generate": why it is not loaded}

    def close(self) -> None:
        for batcher in (self.classify, self.generate):
            if batcher is not None:
                batcher.close()


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, max_length=300, examples=["a photo of a red truck"])
    seed: int = Field(0, ge=0, le=2**31 - 1)
    steps: int | None = Field(None, ge=1, description="denoising steps (default and maximum: see /v1/info)")
    guidance: float | None = Field(None, ge=0.0, description="classifier-free guidance scale")


def _one_line(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)[:500]


def _busy(message: str, retry_after: int) -> HTTPException:
    return HTTPException(503, message, headers={"Retry-After": str(retry_after)})


async def _wait(batcher: MicroBatcher, item, timeout_s: float, retry_after: int):
    try:
        fut = batcher.submit(item)
    except QueueFull:
        raise _busy(f"too many requests waiting ({batcher.max_queue}); retry shortly", retry_after)
    except Closed:
        raise _busy("the service is shutting down", retry_after)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(fut), timeout_s)
    except asyncio.TimeoutError:
        fut.cancel()  # still queued: the worker skips it
        raise HTTPException(504, f"no answer within {timeout_s:g} s; the service is overloaded") from None


def create_app(settings: Settings | None = None, services: Services | None = None,
               loader: Callable[[Settings], Services] | None = None) -> FastAPI:
    """`services` ready-made (tests), or `loader(settings)` run in the background at start-up, so
    /healthz answers while the models load and /readyz turns 200 when they are in."""
    settings = settings or Settings()
    state = {"services": services, "error": None, "draining": False, "started": time.time()}
    if services is None and loader is None:
        raise ValueError("give services or a loader")

    def load() -> None:
        try:
            state["services"] = loader(settings)
            log.info("models loaded in %.1f s", time.time() - state["started"])
        except Exception as exc:  # reported by /readyz; the process stays up to say why
            state["error"] = _why(exc)
            log.error("loading the models failed: %s", state["error"])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = None
        if state["services"] is None:
            loading = threading.Thread(target=load, name="model-loader", daemon=True)
            loading.start()
        yield
        # uvicorn has stopped accepting and finished the requests in flight; drain the queues
        state["draining"] = True
        if loading is not None:
            await asyncio.to_thread(loading.join)
        if state["services"] is not None:
            await asyncio.to_thread(state["services"].close)

    app = FastAPI(title="CIFAR-10 classifier and text-to-image API", version="1.0",
                  lifespan=lifespan,
                  description="The project's shipped classifier (TFLite, micro-batched) and its "
                              "small text-to-image model.")
    app.state.settings, app.state.serving = settings, state

    def ready(part: str | None = None) -> Services:
        """The services, or 503: loading, shutting down, or `part` ("classify"/"generate") failed."""
        svc = state["services"]
        if svc is None:
            detail = (f"the models failed to load ({state['error']})" if state["error"]
                      else "the models are still loading")
            raise _busy(detail, 5)
        if state["draining"]:
            raise _busy("the service is shutting down", settings.retry_after_s)
        if part is not None and getattr(svc, part) is None:
            raise _busy(f"this model is not loaded ({svc.errors.get(part, 'unknown reason')})", 30)
        return svc

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _one_line(exc)}, status_code=422)

    @app.middleware("http")
    async def upload_limit(request: Request, call_next):
        # refuse an oversized body from its header, before it is read and parsed
        length = request.headers.get("content-length")
        if request.url.path == "/v1/classify" and length and length.isdigit() \
                and int(length) > settings.max_upload_bytes + 64 * 1024:
            return JSONResponse({"detail": f"upload larger than {settings.max_upload_bytes:,} bytes"},
                                status_code=413)
        return await call_next(request)

    @app.get("/healthz", summary="The process is up")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="The models are loaded and requests are accepted")
    def readyz():
        svc = ready()
        if svc.errors:  # a replica missing a model must not receive traffic
            raise _busy("not every model is loaded: " + "; ".join(f"{k}: {v}" for k, v in svc.errors.items()), 30)
        return {"status": "ready", "classifier": svc.classifier_name, "text_to_image": svc.generator_name}

    @app.get("/metrics", summary="Queue depths, batch sizes, rejections")
    def metrics():
        svc = state["services"]
        out = {"ready": svc is not None and not state["draining"],
               "uptime_s": round(time.time() - state["started"], 1)}
        if svc is not None:
            for part in ("classify", "generate"):
                batcher = getattr(svc, part)
                out[part] = batcher.stats() if batcher is not None else {"error": svc.errors.get(part)}
        return out

    @app.get("/v1/info", summary="Models, classes, vocabulary and limits")
    def info():
        svc = ready()
        tok = svc.tokenizer
        return {"classifier": svc.classifier_name, "classes": list(svc.class_names),
                "text_to_image": svc.generator_name,
                "vocabulary": list(tok.vocabulary[2:]) if tok is not None else None,
                "max_words": tok.max_length if tok is not None else None,
                "steps": {"default": settings.default_steps, "max": settings.max_steps},
                "guidance": {"default": svc.default_guidance, "max": settings.max_guidance},
                "max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels}

    @app.post("/v1/classify", summary="Top-5 CIFAR-10 classes of an uploaded picture")
    async def classify(file: UploadFile = File(..., description="PNG, JPEG or WebP"),
                       crop: bool = Query(True, description="crop to the centre square (else squash)")):
        svc = ready("classify")
        data = await file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, f"upload larger than {settings.max_upload_bytes:,} bytes")
        try:
            pixels = await asyncio.to_thread(images.upload_to_array, data, crop, settings.max_pixels)
        except images.BadImage as exc:
            raise HTTPException(422, str(exc)) from None
        probs = np.asarray(await _wait(svc.classify, pixels, settings.classify_timeout_s,
                                       settings.retry_after_s), np.float64)
        order = np.argsort(-probs)[:settings.top_k]
        body = {"model": svc.classifier_name,
                "top": [{"class": svc.class_names[i], "probability": round(float(probs[i]), 6)}
                        for i in order]}
        if svc.ood_threshold is not None:
            body["out_of_distribution"] = bool(probs.max() < svc.ood_threshold)
        return body

    @app.post("/v1/generate", summary="A 32x32 picture from a prompt",
              responses={200: {"content": {"image/png": {}}}})
    async def generate(req: GenerateRequest,
                       format: Literal["png", "json"] = Query("png", description="png or json (base64)")):
        svc = ready("generate")
        steps = settings.default_steps if req.steps is None else req.steps
        if steps > settings.max_steps:
            raise HTTPException(422, f"steps: at most {settings.max_steps}, got {steps}")
        guidance = svc.default_guidance if req.guidance is None else req.guidance
        if guidance > settings.max_guidance:
            raise HTTPException(422, f"guidance: at most {settings.max_guidance:g}, got {guidance:g}")
        from trainer.diffusion.tokenizer import PromptError

        try:
            svc.tokenizer.check(req.prompt)
        except PromptError as exc:
            raise HTTPException(422, str(exc)) from None
        unknown = list(dict.fromkeys(svc.tokenizer.unknown_words(req.prompt)))
        if unknown:
            raise HTTPException(422, f"words the model does not know: {', '.join(unknown)}; it knows: "
                                     + ", ".join(svc.tokenizer.vocabulary[2:]))
        from serve.models import GenerateJob

        t0 = time.perf_counter()
        try:
            image = await _wait(svc.generate, GenerateJob(req.prompt, req.seed, steps, guidance),
                                settings.generate_timeout_s, settings.retry_after_s)
        except PromptError as exc:
            raise HTTPException(422, str(exc)) from None
        png = images.to_png(image)
        headers = {"X-Model": svc.generator_name, "X-Seconds": f"{time.perf_counter() - t0:.3f}"}
        if format == "json":
            return JSONResponse({"model": svc.generator_name, "prompt": req.prompt, "seed": req.seed,
                                 "steps": steps, "guidance": guidance,
                                 "width": int(image.shape[1]), "height": int(image.shape[0]),
                                 "png_base64": base64.b64encode(png).decode()}, headers=headers)
        return Response(png, media_type="image/png", headers=headers)

    return app


def _why(exc: Exception) -> str:
    return " ".join(f"{exc.__class__.__name__}: {exc}".split())[:300]


def load_services(settings: Settings, tflite_variant: str = "float32", text_to_image_dir=None) -> Services:
    """The deliverables named in saved_models/DELIVERABLES.json, warmed up. A model that fails to
    load is reported (/readyz, 503 on its endpoint) while the other one serves."""
    from serve import models
    from trainer.deliverables import deliverable_dir, deliverable_name

    errors, classify, names, generate, tokenizer, guidance = {}, None, (), None, None, 3.0
    classifier_name = deliverable_name("classifier")
    try:
        info = models.classifier_info(deliverable_dir("classifier"), tflite_variant)
        names = info.class_names
        classify = MicroBatcher(lambda: models.TFLiteBatchRunner(info.path, settings.threads),
                                max_batch=settings.classify_max_batch,
                                max_wait_s=settings.classify_wait_ms / 1000,
                                max_queue=settings.classify_queue, workers=settings.classify_workers,
                                name="classify").start()
    except Exception as exc:
        errors["classify"] = _why(exc)
        log.error("classifier not loaded: %s", errors["classify"])
    try:
        model = models.load_generator(text_to_image_dir or deliverable_dir("text_to_image"))
        model.generate(model.tokenizer.vocabulary[2], seed=0, steps=2)  # trace the graphs before traffic
        tokenizer, guidance = model.tokenizer, float(model.default_guidance_scale)
        generate = MicroBatcher(lambda: models.generator_runner(model),
                                max_batch=settings.generate_batch,
                                max_wait_s=0.02 if settings.generate_batch > 1 else 0.0,
                                max_queue=settings.generate_queue, workers=settings.generate_workers,
                                name="generate").start()
    except Exception as exc:
        errors["generate"] = _why(exc)
        log.error("text-to-image model not loaded: %s", errors["generate"])
    from pathlib import Path

    generator_name = Path(text_to_image_dir).name if text_to_image_dir else deliverable_name("text_to_image")
    return Services(classify, classifier_name, names, generate, generator_name,
                    tokenizer, guidance, models.load_ood_threshold(), errors)
