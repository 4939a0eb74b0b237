"""A bounded request queue served by worker threads that group waiting requests into batches.

Each worker builds its own runner in its own thread (a TFLite interpreter is not thread-safe, so
one thread owns one), then loops: take one request, wait up to `max_wait_s` for more (at most
`max_batch`), run them in one call, hand each request its own result. Under light load a request
waits at most the window; under heavy load batches fill up and throughput grows. The queue is
bounded: when full, `submit` raises QueueFull at once (the API answers 503) instead of letting
memory grow. `close()` stops taking requests and finishes every one already queued.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Sequence

_STOP = object()


class QueueFull(RuntimeError):
    """Too many requests are waiting; try again later."""


class Closed(RuntimeError):
    """The batcher is shutting down and takes no new requests."""


class MicroBatcher:
    """`make_runner()` is called once in each worker thread and returns
    `run(items: list) -> list of results` (same length, same order)."""

    def __init__(self, make_runner: Callable[[], Callable[[list], Sequence[Any]]], *,
                 max_batch: int = 32, max_wait_s: float = 0.005, max_queue: int = 256,
                 workers: int = 1, name: str = "batcher"):
        if max_batch < 1 or max_queue < 1 or workers < 1 or max_wait_s < 0:
            raise ValueError("max_batch, max_queue and workers must be >= 1, max_wait_s >= 0")
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self.name = name
        self._make_runner = make_runner
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._closed = False
        self.batch_sizes: collections.Counter = collections.Counter()
        self.rejected = 0
        self.in_progress = 0
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(workers)]
        self._started = threading.Barrier(workers + 1)
        self._start_errors: list[BaseException] = []

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> "MicroBatcher":
        """Starts the workers and waits until each has built its runner (re-raises its error)."""
        for t in self._threads:
            t.start()
        self._started.wait()
        if self._start_errors:
            self.close()
            raise self._start_errors[0]
        return self

    def close(self, timeout: float | None = None) -> None:
        """No new requests; the queued ones are still answered; returns when the workers end."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for t in self._threads:
            if t.is_alive():
                self._queue.put(_STOP)  # blocks only while workers are draining a full queue
        for t in self._threads:
            if t.is_alive():
                t.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def depth(self) -> int:
        """Requests waiting (not yet taken by a worker): the autoscaling signal."""
        return self._queue.qsize()

    # -- requests -----------------------------------------------------------------------------
    def submit(self, item) -> Future:
        fut: Future = Future()
        with self._lock:
            if self._closed:
                raise Closed(f"{self.name} is shutting down")
            try:
                self._queue.put_nowait((item, fut))
            except queue.Full:
                self.rejected += 1
                raise QueueFull(f"{self.name}: {self.max_queue} requests already waiting") from None
        return fut

    # -- workers ------------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            run = self._make_runner()
        except BaseException as exc:  # reported by start()
            self._start_errors.append(exc)
            self._started.wait()
            return
        self._started.wait()
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            # a request whose caller gave up (timeout) while queued is skipped, not computed
            live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
            if not live:
                continue
            with self._lock:
                self.batch_sizes[len(live)] += 1
                self.in_progress += len(live)
            try:
                results = list(run([item for item, _ in live]))
                if len(results) != len(live):
                    raise RuntimeError(f"runner returned {len(results)} results for {len(live)} requests")
            except BaseException as exc:
                for _, fut in live:
                    fut.set_exception(exc)
            else:
                for (_, fut), result in zip(live, results):
                    fut.set_result(result)
            finally:
                with self._lock:
                    self.in_progress -= len(live)

    def stats(self) -> dict:
        with self._lock:
            sizes = dict(sorted(self.batch_sizes.items()))
            batches = sum(sizes.values())
            return {"queue_depth": self.depth, "max_queue": self.max_queue,
                    "in_progress": self.in_progress, "rejected": self.rejected,
                    "batches": batches,
                    "mean_batch_size": round(sum(k * v for k, v in sizes.items()) / batches, 2)
                    if batches else 0.0,
                    "batch_sizes": {str(k): v for k, v in sizes.items()}}
