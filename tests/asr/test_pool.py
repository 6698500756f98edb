"""The process pool keeps the event loop free while real recognition runs in worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from callcenter.asr.adapters.viet_asr_engine import VietAsrRecognizer
from callcenter.asr.audio import read_wav
from callcenter.asr.engines import EngineSpec
from callcenter.asr.errors import RecognizerUnavailable
from callcenter.asr.pool import AsyncRecognizer
from callcenter.asr.settings import AsrSettings

pytestmark = pytest.mark.slow

SPEC = EngineSpec("viet-asr")


@pytest.fixture(scope="module")
def long_comment(speech_dir: Path) -> tuple[bytes, int]:
    """About 16 s of real 8 kHz speech: a long comment."""
    names = sorted(p.name for p in speech_dir.glob("*.wav"))[::11]
    chunks = []
    rate = 8000
    for name in names:
        pcm, rate = read_wav(speech_dir / name)
        chunks.append(pcm)
    return b"".join(chunks), rate


async def _max_tick_gap(work: Callable[[], Awaitable[object]], period: float = 0.01) -> tuple[float, float]:
    """Run ``work`` while a ticker (a stand-in for other calls' prompts) measures the loop's delays."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(period)
            now = time.perf_counter()
            gaps.append(now - last - period)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - started
    done.set()
    await tick
    return max(gaps), elapsed


def test_event_loop_stays_responsive_during_a_long_transcription(
    long_comment: tuple[bytes, int], viet_asr: VietAsrRecognizer
) -> None:
    pcm, rate = long_comment

    async def scenario() -> None:
        async with AsyncRecognizer(SPEC, workers=1) as asr:
            transcript = None

            async def in_pool() -> None:
                nonlocal transcript
                transcript = await asr.transcribe(pcm, rate)

            gap, elapsed = await _max_tick_gap(in_pool)
            assert transcript is not None and len(transcript.text.split()) >= 5
            assert elapsed > 1.0  # long enough that blocking would show
            assert gap < 0.25, f"loop stalled {gap:.2f}s during a {elapsed:.1f}s transcription"

            # The same work on the loop itself stalls it for the whole transcription: the
            # measurement above can fail.
            async def inline() -> None:
                viet_asr.transcribe(pcm, rate)

            blocked_gap, _ = await _max_tick_gap(inline)
            assert blocked_gap > 0.5

    asyncio.run(scenario())


def test_short_answer_not_queued_behind_a_long_comment(
    long_comment: tuple[bytes, int], speech_dir: Path
) -> None:
    pcm, rate = long_comment
    short_pcm, short_rate = read_wav(speech_dir / "DDUSNG0001.wav")

    async def scenario() -> None:
        async with AsyncRecognizer(SPEC, workers=2) as asr:
            finished: list[str] = []

            async def run(label: str, audio: bytes, audio_rate: int) -> None:
                await asr.transcribe(audio, audio_rate)
                finished.append(label)

            comment = asyncio.create_task(run("comment", pcm, rate))
            await asyncio.sleep(0.1)
            await run("answer", short_pcm, short_rate)
            await comment
            assert finished == ["answer", "comment"]

    asyncio.run(scenario())


def test_dead_worker_is_a_transient_error_and_the_pool_recovers(
    long_comment: tuple[bytes, int], speech_dir: Path
) -> None:
    pcm, rate = long_comment
    short_pcm, short_rate = read_wav(speech_dir / "KHOONG0001.wav")

    async def scenario() -> None:
        async with AsyncRecognizer(SPEC, workers=1) as asr:
            pool = asr._ensure_pool()
            victim = next(iter(pool._processes))  # the worker's pid (processes started by start())
            job = asyncio.create_task(asr.transcribe(pcm, rate))
            await asyncio.sleep(0.3)
            os.kill(victim, signal.SIGKILL)
            with pytest.raises(RecognizerUnavailable):
                await job
            transcript = await asr.transcribe(short_pcm, short_rate)
            assert transcript.text == "không"

    asyncio.run(scenario())


def test_timeout_is_reported() -> None:
    async def scenario() -> None:
        async with AsyncRecognizer(SPEC, workers=1, timeout=0.01) as asr:
            with pytest.raises(TimeoutError):
                await asr.transcribe(bytes(8000 * 2 * 8), 8000)  # the pool's default
            with pytest.raises(TimeoutError):
                await asr.transcribe(bytes(8000 * 2 * 8), 8000, timeout=0.02)

    asyncio.run(scenario())


def test_from_settings() -> None:
    assert AsyncRecognizer.from_settings(AsrSettings(engine="none")) is None
    pool = AsyncRecognizer.from_settings(AsrSettings(engine="viet-asr", pool_workers=2, timeout_seconds=4))
    assert pool is not None
    assert (pool.workers, pool.timeout) == (2, 4)
    pool.close()  # never started: nothing to stop


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers must be at least 1"):
        AsyncRecognizer(SPEC, workers=0)


def test_unpicklable_factory_is_refused_at_once() -> None:
    # Workers are spawned, so the factory is pickled: a lambda would fail later inside the pool.
    with pytest.raises(TypeError, match="must be picklable"):
        AsyncRecognizer(lambda: SPEC(), workers=1)
