"""The API process under uvicorn: its own log lines (the access log's query strings) are masked too."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from callcenter.core.db import upgrade_database

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_uvicorn_access_log_masks_phone_numbers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    upgrade_database(url)
    port = _free_port()
    env = os.environ | {"CALLCENTER_ENV": "test", "CALLCENTER_DATABASE_URL": url}
    log = tmp_path / "uvicorn.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "callcenter.api.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    answer = httpx.get(
                        f"http://127.0.0.1:{port}/health?callback=0905123456&cccd=048090001234"
                    )
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
            assert answer.status_code == 200
            missing = httpx.get(f"http://127.0.0.1:{port}/no-such-page/+84905123456")
            assert missing.status_code == 404
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    text = log.read_text()
    assert "GET /health?callback=*******456&cccd=*********234" in text, text
    assert "GET /no-such-page/********456" in text, text
    for secret in ("0905123456", "048090001234", "84905123456"):
        assert secret not in text, text
