"""A rig of real processes for the dialer's integration tests and its benchmark.

Seeded dossiers and a started campaign, a private redis-server (chaos tests restart it, never the
shared one), and real Celery worker, beat and trunk-owner processes in their own process groups.
Used by ``tests/dialer`` and ``scripts/bench_dialer.py``; nothing in the service imports it (like
:mod:`callcenter.ivr.agi_testing`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from callcenter.campaign import service as campaign_service
from callcenter.campaign.schemas import parse_spec
from callcenter.core.pii import PiiCipher
from callcenter.intake.models import Agency, Dossier, Field

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN_DSN = os.environ.get(
    "CALLCENTER_TEST_PG_ADMIN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)

ALL_DAY = [{"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "23:59:59"}]


def phone_for(index: int) -> str:
    return f"+849{index:08d}"


def seed_dossiers(session: Session, cipher: PiiCipher, count: int, *, phone: Any = phone_for) -> str:
    """One agency, one field and ``count`` returned dossiers with encrypted names and phones."""
    agency = Agency(code=f"SO-{uuid.uuid4().hex[:6]}", name="Sở Xây dựng", organisations_only=False)
    fld = Field(code=f"XD-{uuid.uuid4().hex[:6]}", name="Xây dựng")
    session.add_all([agency, fld])
    session.flush()
    returned = datetime(2026, 10, 15, 3, 0, tzinfo=UTC)
    name_enc = cipher.encrypt("Nguyễn Văn An")
    rows = []
    for i in range(count):
        e164 = phone(i)
        rows.append(
            {
                "source": "test",
                "code": f"HS-{uuid.uuid4().hex[:12]}",
                "agency_id": agency.id,
                "field_id": fld.id,
                "submitter_name_enc": name_enc,
                "phone_enc": cipher.encrypt(e164),
                "phone_hash": cipher.phone_hash(e164),
                "phone_kind": "mobile",
                "is_organisation": False,
                "received_at": returned - timedelta(days=10),
                "due_at": returned - timedelta(days=1),
                "returned_at": returned,
                "status": "returned",
                "timeliness": "late" if i % 3 == 0 else "on_time",
                "content_hash": hashlib.sha256(f"{i}-{e164}".encode()).hexdigest(),
                "created_at": returned,
                "updated_at": returned,
            }
        )
    session.execute(insert(Dossier), rows)
    return agency.code


def start_campaign(
    session: Session, *, total: int, agency_codes: list[str], now: datetime, attempts: int = 1
) -> int:
    """A RUNNING fixed-total campaign callable right now (all-day windows, no holidays)."""
    spec = parse_spec(
        {
            "name": "dialer test",
            "policy": "fixed_total",
            "policy_params": {"total": total},
            "returned_from": "2026-10-01",
            "returned_to": "2026-10-31",
            "agencies": agency_codes,
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(days=5)).isoformat(),
            "calling_rules": {
                "windows": ALL_DAY,
                "skip_holidays": False,
                "retry": {"max_attempts_total": attempts},
                "caps": {"max_attempts_per_phone_per_day": 10, "cooloff_days": 0},
            },
            "seed": 7,
        }
    )
    campaign = campaign_service.create_campaign(
        session, spec=spec, actor="test", now=now - timedelta(hours=2)
    )
    campaign_service.start_campaign(session, campaign_id=campaign.id, actor="test", now=now)
    return int(campaign.id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of our own on a free port: chaos tests restart it (never the shared one)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@dataclass
class Processes:
    """Real worker, beat and trunk-owner processes, each in its own process group (kill -9 safe)."""

    env: dict[str, str]
    logdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.logdir / f"{name}.log").open("ab") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                list(args),
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def worker(self, name: str, concurrency: int = 2, pool: str = "prefork") -> subprocess.Popen[bytes]:
        return self.start(
            name, sys.executable, "-m", "celery", "-A", "callcenter.celery_app", "worker", "-Q",
            "dialer,dialer_control", "-c", str(concurrency), "-P", pool, "-n", f"{name}@%h",
            "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
        )  # fmt: skip

    def beat(self) -> subprocess.Popen[bytes]:
        return self.start(
            "beat", sys.executable, "-m", "celery", "-A", "callcenter.celery_app", "beat",
            "-s", str(self.logdir / "beat-schedule"), "--loglevel", "WARNING",
        )  # fmt: skip

    def owner(self, name: str = "owner") -> subprocess.Popen[bytes]:
        return self.start(name, sys.executable, "-m", "callcenter", "ami-owner", "--metrics-port", "0")

    def kill9(self, name: str) -> None:
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        """SIGTERM to each main process only, as an init system with ``KillMode=mixed`` does.

        Signalling the whole group made the Celery pool children die under their parent's warm
        shutdown: a task in flight then ended in a WorkerLostError traceback. The main process
        stops its own children; whatever is left after 15 s is killed with the group.
        """
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for name in list(self.procs):
            proc = self.procs.pop(name)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, if any
            proc.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logdir.glob("*.log")
        )


def dialer_env(*, database_url: str, redis_url: str, **dialer: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env.update(
        {
            "CALLCENTER_ENV": "test",
            "CALLCENTER_DATABASE_URL": database_url,
            "CALLCENTER_REDIS_URL": redis_url,
            "CALLCENTER_BROKER_URL": redis_url,
            "CALLCENTER_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO),
        }
    )
    env.update({f"CALLCENTER_DIALER_{k.upper()}": v for k, v in dialer.items()})
    return env
