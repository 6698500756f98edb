"""Every line the processes log is masked: messages, tracebacks, and Celery workers' own logging."""

from __future__ import annotations

import logging
import random
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from callcenter.core.logging import MaskingFormatter, configure_logging
from callcenter.dialer.testing import PrivateRedis, Processes, dialer_env

PHONE = "+84905123456"


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    root.handlers = []
    yield root
    root.handlers, root.level = saved[0], saved[1]


def test_the_traceback_of_a_logged_exception_is_masked_too(
    clean_root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    configure_logging("INFO")  # once per process: no second handler
    assert sum(isinstance(h.formatter, MaskingFormatter) for h in clean_root.handlers) == 1
    log = logging.getLogger("test.masking")
    try:
        raise ValueError(f"trunk refused {PHONE}")
    except ValueError:
        log.exception("calling %s failed", PHONE)
    err = capsys.readouterr().err
    assert "calling ********456 failed" in err
    assert "ValueError: trunk refused ********456" in err  # the traceback's last line
    assert "905123456" not in err


def test_a_celery_worker_keeps_the_masked_logging() -> None:
    # Celery's own set-up replaced the root handlers with unmasked ones (and a solo worker never runs
    # worker_process_init). A fresh process, as `celery worker` sets logging up:
    script = (
        "import logging\n"
        "from callcenter.celery_app import app\n"
        "app.log.setup(loglevel='INFO')\n"
        "logging.getLogger('callcenter.dialer').warning('calling %s', '" + PHONE + "')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "calling ********456" in done.stderr
    assert "905123456" not in done.stderr + done.stdout


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_a_prefork_worker_child_logs_masked(private_redis: PrivateRedis, tmp_path: Path) -> None:
    """A real ``celery worker`` (prefork, one child) runs a task whose failure quotes a phone number:
    Celery logs that failure, with its traceback, from the child process, through the child's logging."""
    env = dialer_env(database_url=f"sqlite:///{tmp_path / 'unused.db'}", redis_url=private_redis.url)
    env["CALLCENTER_LOG_LEVEL"] = "INFO"
    procs = Processes(env, tmp_path)
    procs.start(
        "worker", sys.executable, "-m", "celery", "-A", "callcenter.celery_app", "worker", "-P", "prefork",
        "-c", "1", "-Q", "analysis", "-n", "masking@%h", "--without-gossip", "--without-mingle",
        "--without-heartbeat", "--loglevel", "INFO",
    )  # fmt: skip
    log_file = tmp_path / "worker.log"
    probe = Celery("probe", broker=private_redis.url)
    try:
        # Not a period: the task raises a ValidationError quoting its argument, the number.
        task_id = "masking-" + "".join(random.choices(string.ascii_lowercase, k=12))  # no digits to mask
        probe.send_task("analysis.detect_anomalies", args=[PHONE], queue="analysis", task_id=task_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and f"[{task_id}] raised" not in _read(log_file):
            time.sleep(0.2)
    finally:
        probe.close()
        procs.stop_all()
    output = _read(log_file)
    assert f"[{task_id}] raised unexpected: ValidationError" in output, output[-3000:]
    assert "'********456' is not a period" in output  # the message ...
    assert "ValidationError: field 'period': '********456' is not a period" in output  # ... and its traceback
    assert "905123456" not in output
