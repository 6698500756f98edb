"""Recognition off the event loop: a process pool whose workers each load the engine once.

The AGI server serves many calls on one asyncio loop. Recognition is CPU-bound native code that
can take seconds for a comment; in a thread it would still hold the GIL between native calls and
share the one core the loop needs. :class:`AsyncRecognizer` runs it in worker *processes* (spawned,
not forked, so no lock or native handle of the parent is inherited), each building the engine once
from a picklable factory (:class:`~callcenter.asr.engines.EngineSpec`).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType

from callcenter.asr.engines import recognizer_factory
from callcenter.asr.errors import RecognizerUnavailable
from callcenter.asr.service import Recognizer, Transcript
from callcenter.asr.settings import AsrSettings

log = logging.getLogger(__name__)

# The worker process's engine, built once by the pool initializer.
_worker_recognizer: Recognizer | None = None


def _init_worker(factory: Callable[[], Recognizer]) -> None:
    global _worker_recognizer
    _worker_recognizer = factory()


def _transcribe_in_worker(pcm16: bytes, sample_rate: int, phrases: tuple[str, ...] | None) -> Transcript:
    if _worker_recognizer is None:  # the initializer always runs first; this guards misuse
        raise RecognizerUnavailable("recognition worker started without an engine")
    return _worker_recognizer.transcribe(pcm16, sample_rate, phrases=phrases)


def _worker_engine_name() -> str:
    return _worker_recognizer.name if _worker_recognizer is not None else ""


class AsyncRecognizer:
    """Awaitable recognition in a process pool; one engine load per worker process.

    Use as ``async with AsyncRecognizer(spec, workers=2) as asr: t = await asr.transcribe(...)``
    (or call :meth:`start` / :meth:`close`). A worker that dies breaks the pool: the call in flight
    gets :class:`RecognizerUnavailable` (transient) and the next call gets a fresh pool.
    """

    def __init__(
        self, recognizer_factory: Callable[[], Recognizer], workers: int = 1, *, timeout: float | None = None
    ) -> None:
        if workers < 1:
            raise ValueError(f"AsyncRecognizer: workers must be at least 1, got {workers}")
        try:
            pickle.dumps(recognizer_factory)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            # Worker processes are spawned: the factory travels to them pickled. A lambda or a
            # closure fails there, late and obscurely; say so now.
            raise TypeError(
                "AsyncRecognizer: recognizer_factory must be picklable (a module-level callable); "
                "use callcenter.asr.engines.recognizer_factory(settings)"
            ) from exc
        self._factory = recognizer_factory
        self.workers = workers
        self.timeout = timeout  # default for transcribe(); None waits as long as it takes
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    def from_settings(cls, settings: AsrSettings) -> AsyncRecognizer | None:
        """The pool the settings describe (engine, workers, timeout), or None when speech is off."""
        spec = recognizer_factory(settings)
        if spec is None:
            return None
        return cls(spec, settings.pool_workers, timeout=settings.timeout_seconds)

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self._factory,),
            )
        return self._pool

    async def start(self) -> str:
        """Start every worker and load its engine now, not on the first caller; returns the engine name."""
        pool = self._ensure_pool()
        loop = asyncio.get_running_loop()
        names = await asyncio.gather(
            *(loop.run_in_executor(pool, _worker_engine_name) for _ in range(self.workers))
        )
        return names[0]

    async def transcribe(
        self,
        pcm16: bytes,
        sample_rate: int,
        *,
        phrases: Sequence[str] | None = None,
        timeout: float | None = None,
    ) -> Transcript:
        """Recognise one utterance in a worker; the event loop stays free meanwhile.

        Raises TimeoutError after ``timeout`` seconds (default: the pool's ``timeout``); the worker
        finishes the job and is reused.
        """
        pool = self._ensure_pool()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            pool, _transcribe_in_worker, pcm16, sample_rate, tuple(phrases) if phrases else None
        )
        try:
            return await asyncio.wait_for(future, timeout if timeout is not None else self.timeout)
        except BrokenProcessPool as exc:
            log.warning("recognition pool broke (a worker died); it will be rebuilt")
            self._discard_pool()
            raise RecognizerUnavailable("a recognition worker died; try again") from exc

    def _discard_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (waits for the utterances in flight)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    async def __aenter__(self) -> AsyncRecognizer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)
