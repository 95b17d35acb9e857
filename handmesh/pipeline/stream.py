"""Pipelined video: the pipeline's three stages in three threads, so consecutive frames overlap.

`HandMeshPipeline.process` runs detect -> estimate -> finish one frame at a time, so a frame costs the
sum of the stages. On a video the stages of neighbouring frames are independent: while frame t runs
through the model, frame t+1 can be detected and frame t-1 rendered. Each stage waits in native code
most of the time (MediaPipe's graph, ONNX Runtime, the GL rasterizer and cv2 all release the GIL), so
the threads overlap on a multi-core CPU and the frame rate approaches that of the slowest stage. The
price is latency: a result comes back about two stage-times after its frame went in (recorded per
frame as `timings["latency"]`).

Frames leave in the order they entered; the queues between stages hold one frame each, so a caller
that submits faster than the pipeline runs is slowed down (`submit` blocks) instead of piling up
frames. An exception in a stage is raised by `get` for the frame it belongs to; later frames go on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from handmesh.pipeline.pipeline import HandMeshPipeline, PipelineResult

_STOP = object()


class _Failed:
    """A frame whose stage raised: carried to the output in its place."""

    def __init__(self, error: BaseException):
        self.error = error


class PipelinedStream:
    """Submit frames, get results in order; detection, model and rendering run in separate threads."""

    def __init__(self, pipeline: HandMeshPipeline, depth: int = 1):
        self.pipeline = pipeline
        size = max(1, int(depth))
        self._queues: list[queue.Queue] = [queue.Queue(maxsize=size) for _ in range(3)]
        self._out: queue.Queue = queue.Queue()
        self._pending = 0
        self._count_lock = threading.Lock()
        self._closed = False
        stages = (self._detect, pipeline.estimate, self._finish)
        self._threads = [
            threading.Thread(
                target=self._run_stage,
                args=(fn, self._queues[i], self._queues[i + 1] if i < 2 else self._out),
                name=f"handmesh-stage-{i}",
                daemon=True,
            )
            for i, fn in enumerate(stages)
        ]
        for th in self._threads:
            th.start()

    def _detect(self, item: tuple[Any, ...]):
        frame, K, timestamp, submitted = item
        job = self.pipeline.detect(frame, K, timestamp)
        job.submitted = submitted
        return job

    def _finish(self, job) -> PipelineResult:
        result = self.pipeline.finish(job)
        result.timings["latency"] = (time.perf_counter() - job.submitted) * 1000.0
        return result

    @staticmethod
    def _run_stage(fn, inbox: queue.Queue, outbox: queue.Queue) -> None:
        while True:
            item = inbox.get()
            if item is _STOP:
                outbox.put(_STOP)
                return
            if not isinstance(item, _Failed):
                try:
                    item = fn(item)
                except Exception as exc:  # handed to the caller with this frame, the stream goes on
                    item = _Failed(exc)
            outbox.put(item)

    @property
    def pending(self) -> int:
        """Frames submitted whose results have not been taken yet."""
        with self._count_lock:
            return self._pending

    def submit(
        self,
        frame: np.ndarray,
        K: np.ndarray | None = None,
        timestamp: float | None = None,
        block: bool = True,
    ) -> bool:
        """Queue a frame (blocks while the first stage is busy unless `block=False`); False if not queued."""
        if self._closed:
            raise RuntimeError("PipelinedStream is closed")
        ts = time.monotonic() if timestamp is None else float(timestamp)
        item = (frame, K, ts, time.perf_counter())
        try:
            self._queues[0].put(item, block=block)
        except queue.Full:
            return False
        with self._count_lock:
            self._pending += 1
        return True

    def get(self, timeout: float | None = None) -> PipelineResult:
        """The next result in submission order (raises the stage's exception for a failed frame)."""
        item = self._out.get(timeout=timeout)
        if item is _STOP:
            raise RuntimeError("PipelinedStream is closed")
        with self._count_lock:
            self._pending -= 1
        if isinstance(item, _Failed):
            raise item.error
        return item

    def get_nowait(self) -> PipelineResult | None:
        """The next result if one is ready, else None."""
        try:
            return self.get(timeout=0.0)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Stop the threads once the frames already submitted have passed (their results are dropped)."""
        if self._closed:
            return
        self._closed = True
        self._queues[0].put(_STOP)
        for th in self._threads:
            th.join(timeout=30.0)

    def __enter__(self) -> PipelinedStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def process_stream(
    pipeline: HandMeshPipeline,
    frames: Iterable[np.ndarray | tuple[np.ndarray, np.ndarray | None, float | None]],
    in_flight: int = 3,
) -> Iterator[PipelineResult]:
    """Results of a sequence of frames (or (frame, K, timestamp) tuples), in order, stages overlapped.

    `in_flight` frames at most are inside the pipeline: 3 keeps each stage busy with one frame; more
    smooths over uneven stage times at the cost of latency (each extra frame waits in a queue).
    """
    with PipelinedStream(pipeline) as stream:
        for item in frames:
            frame, K, ts = item if isinstance(item, tuple) else (item, None, None)
            stream.submit(frame, K, ts)
            while stream.pending >= max(1, in_flight):
                yield stream.get()
        while stream.pending:
            yield stream.get()


class LiveFeed:
    """A webcam feed: one frame in per call, the newest finished result out (a frame or two behind).

    Detection, model and rendering of consecutive frames overlap (`PipelinedStream`), so a caller that
    sends frames as fast as it gets answers receives the pipeline's throughput rather than the sum of
    its stages. A pause longer than `idle_reset_s` (the webcam stopped) or another pipeline starts a
    fresh stream with fresh tracks.
    """

    def __init__(self, idle_reset_s: float = 1.0, behind: int = 2):
        self.idle_reset_s = float(idle_reset_s)
        self.behind = max(0, int(behind))
        self._stream: PipelinedStream | None = None
        self._last: PipelineResult | None = None
        self._fed_at = 0.0
        self._lock = threading.Lock()

    def __call__(
        self, pipeline: HandMeshPipeline, frame: np.ndarray, timestamp: float | None = None
    ) -> PipelineResult:
        """Feed one frame; the newest result that is ready (waits only while too many are in flight)."""
        with self._lock:
            now = time.monotonic()
            stream = self._stream
            if stream is None or stream.pipeline is not pipeline or now - self._fed_at > self.idle_reset_s:
                if stream is not None:
                    stream.close()
                pipeline.reset()
                stream = self._stream = PipelinedStream(pipeline)
                self._last = None
            self._fed_at = now
            stream.submit(frame, timestamp=timestamp)
            result = None
            while stream.pending > self.behind:
                result = stream.get(timeout=30.0)
            while (ready := stream.get_nowait()) is not None:
                result = ready
            if result is None:  # the stream is filling up: the last result again (or wait for the first)
                result = self._last if self._last is not None else stream.get(timeout=30.0)
            self._last = result
            return result

    def close(self) -> None:
        """Stop the stream's threads."""
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
