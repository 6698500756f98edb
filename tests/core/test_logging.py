"""Every line the processes log is masked: messages, tracebacks, and Celery workers' own logging."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from callcenter.core.logging import MaskingFormatter, configure_logging

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
