"""The alert tasks in a real Celery worker process (Redis broker) delivering to a real SMTP server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from celery import Celery
from sqlalchemy import select

from callcenter.analysis import alerts
from callcenter.analysis.models import Alert, DeliveryMode, NotifierKind
from callcenter.core.db import make_engine, make_session_factory, upgrade_database
from callcenter.core.pii import PiiCipher

from .conftest import COMMENT, Builder

ROOT = Path(__file__).resolve().parents[2]


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.redis
def test_worker_sends_each_alert_once(tmp_path: Path, cipher: PiiCipher, redis_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    now = datetime.now(UTC)
    with factory() as session:
        build = Builder(session, cipher)
        agency, fld = build.agency("XD", "Sở Xây dựng"), build.field("DD", "Đất đai")
        alerts.add_subscription(
            session,
            agency_id=agency.id,
            notifier=NotifierKind.EMAIL,
            target="motcua@xaydung.danang.gov.vn",
            mode=DeliveryMode.IMMEDIATE,
            cipher=cipher,
            now=now,
        )
        d = build.dossier(agency, fld, returned_at=now - timedelta(days=2))
        response_id = build.called_response(
            d, agency, fld, at=now - timedelta(minutes=1), satisfied=False, reasons=(4,), comment=COMMENT
        ).id
        session.commit()

    box = _Mailbox()
    smtp_port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    queue = f"analysis-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CALLCENTER_DATABASE_URL": url,
        "CALLCENTER_BROKER_URL": redis_url,
        "CALLCENTER_ANALYSIS_SMTP_HOST": "127.0.0.1",
        "CALLCENTER_ANALYSIS_SMTP_PORT": str(smtp_port),
    }
    producer = Celery("test-producer", broker=redis_url)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "callcenter.celery_app",
            "worker",
            "-Q",
            queue,
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        for _ in range(3):  # a repeated task for the same answer must not send again
            producer.send_task("analysis.raise_alert", args=[response_id], queue=queue)
        producer.send_task("analysis.send_alerts", queue=queue)
        assert _wait(lambda: len(box.messages) >= 1, 60), "no e-mail within 60 s"

        def sent() -> bool:
            with factory() as session:
                return session.scalar(select(Alert.state).where(Alert.response_id == response_id)) == "sent"

        assert _wait(sent, 30)
        marker = producer.send_task("analysis.send_alerts", queue=queue)
        assert marker.id
        time.sleep(3)  # the worker drains the queue in order; nothing more may arrive
        assert len(box.messages) == 1
        assert "Sở Xây dựng" in box.messages[0].decode("utf-8", "replace") or b"=?utf-8?" in box.messages[0]
        assert b"0905 123 456" not in box.messages[0]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
        controller.stop()
        engine.dispose()
        producer.close()
