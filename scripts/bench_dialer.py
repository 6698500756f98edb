"""Dialer benchmark: a whole campaign on the simulator trunk through real processes.

Real PostgreSQL (a scratch database, dropped at the end), a private redis-server, a real trunk owner
(``callcenter ami-owner``: the simulated exchange driving the real IVR flow and recorder), real Celery
worker and beat processes. Reports

* completed calls per second (finished attempts over the campaign's wall time),
* channel occupancy while work remains (leases held / channel limit, sampled every 0.5 s while
  targets are still waiting to be called; also without the first ramp-up seconds),
* the highest number of calls placed in any one-second window (from the exchange's own send times;
  must never exceed the cap),
* CPU milliseconds per completed call, summed over every process of the run (owner, workers and
  their children, beat, redis-server) and, separately, the PostgreSQL backends serving them.

Usage::

    .venv/bin/python scripts/bench_dialer.py --dossiers 10000 --channels 300 --cps 30 --time-factor 3.5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg
import redis
from sqlalchemy import func, select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from callcenter.campaign.models import CallTarget  # noqa: E402
from callcenter.core.db import make_engine, make_session_factory, session_scope, upgrade_database  # noqa: E402
from callcenter.core.pii import cipher_from_settings  # noqa: E402
from callcenter.core.settings import Settings  # noqa: E402
from callcenter.dialer.models import AttemptStatus, CallAttempt  # noqa: E402
from callcenter.dialer.pacing import Pacer, Scope  # noqa: E402
from callcenter.dialer.settings import DialerSettings  # noqa: E402
from callcenter.dialer.testing import (  # noqa: E402
    PG_ADMIN_DSN,
    PrivateRedis,
    Processes,
    dialer_env,
    seed_dossiers,
    start_campaign,
)

WAITING_STATES = ("queued", "in_call")


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            continue
    return total


def tree(pids: list[int]) -> list[psutil.Process]:
    out: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        out.append(root)
        out.extend(root.children(recursive=True))
    return out


def pg_backends(dbname: str) -> list[psutil.Process]:
    """The PostgreSQL backends serving the dialer's processes: not this script's own connections
    (its progress counts run every 0.5 s over the whole target table and are not the dialer's work)."""
    own_ports = [c.laddr.port for c in psutil.Process().net_connections(kind="tcp") if c.laddr]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND NOT (client_port = ANY(%s))",
                (dbname, own_ports),
            )
        ]
    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return out


class SpeedProbe(threading.Thread):
    """How fast this machine runs Python right now: every 2 s, the CPU time of a fixed loop.

    This machine is a virtual one whose speed drifts by up to a fifth within minutes (the same loop
    took 0.31 to 0.44 s within an hour): the CPU a process is charged for a given piece of work
    drifts with it. The median over the run (``time.thread_time`` of this thread alone, so waiting
    for the GIL does not count) is printed with the figures; runs of different codes compare best
    at similar probe times.
    """

    LOOPS = 200_000

    def __init__(self) -> None:
        super().__init__(daemon=True, name="speed-probe")
        self.samples: list[float] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(2.0):
            start = time.thread_time()
            total = 0
            for i in range(self.LOOPS):
                total += i
            self.samples.append(1000 * (time.thread_time() - start))

    def stop(self) -> float | None:
        self._stop_event.set()
        return round(statistics.median(self.samples), 2) if self.samples else None


def steady_window(edges: list[tuple[float, float, float, int]]) -> dict[str, float] | None:
    """CPU per call finished between the window's two edges (see ``window`` in :func:`main`)."""
    if len(edges) < 2 or edges[1][3] <= edges[0][3]:
        return None
    (t0, ours0, pg0, done0), (t1, ours1, pg1, done1) = edges[:2]
    calls = done1 - done0
    return {
        "from_s": round(t0, 1),
        "to_s": round(t1, 1),
        "calls": calls,
        "cpu_ms_per_call_our_processes": round(1000 * (ours1 - ours0) / calls, 2),
        "cpu_ms_per_call_with_postgres": round(1000 * (ours1 - ours0 + pg1 - pg0) / calls, 2),
    }


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving the dialer, each backend counted once.

    Backends come and go (a pool replacing a connection), so the set is read at the start, every
    ``every`` seconds while the run lasts (:meth:`maybe_sample`) and at the end; each backend counts
    with the last CPU time read from it, less what it had used at the start. A backend that exits
    loses at most the time since its last reading. (Until 2026-12-07 the end read added the start's
    backends to the end's, and every backend alive through the run was counted twice.)
    """

    def __init__(self, dbname: str, *, every: float = 2.0) -> None:
        self.dbname = dbname
        self.every = every
        self.start = self._read()
        self.last = dict(self.start)
        self.sampled = time.monotonic()

    def _read(self) -> dict[int, float]:
        return {p.pid: cpu_seconds([p]) for p in pg_backends(self.dbname)}

    def maybe_sample(self) -> None:
        if time.monotonic() - self.sampled >= self.every:
            self.sample()

    def sample(self) -> None:
        self.last.update(self._read())
        self.sampled = time.monotonic()

    def total(self) -> float:
        return sum(self.last.values()) - sum(self.start.values())


class InPlaceOfAutovacuum:
    """VACUUM (ANALYZE) of the dialer's busiest tables, every ``every`` seconds, on a server that runs
    without autovacuum (as this machine's does); production PostgreSQL keeps autovacuum on.

    Without it the tables' statistics stay those of the campaign's draw (every target queued, no
    attempt) and dead row versions pile up: plans chosen for an empty ``call_attempts`` scan all of
    it on every release, and the PostgreSQL cost per call grows with the campaign. The VACUUM runs in
    this script's own backend; its CPU is measured and added to PostgreSQL's figure.
    """

    TABLES = "call_attempts, call_targets, survey_responses, phone_call_guards"

    def __init__(self, dbname: str, *, every: float) -> None:
        self.every = every
        self.cpu_seconds = 0.0
        self.runs = 0
        self.conn: psycopg.Connection[tuple[object, ...]] | None = None
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            self.server_autovacuum = str(admin.execute("SHOW autovacuum").fetchone()[0])  # type: ignore[index]
        if every > 0 and self.server_autovacuum == "off":
            self.conn = psycopg.connect(PG_ADMIN_DSN, dbname=dbname, autocommit=True)
            pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            self.backend = psutil.Process(int(str(pid)))
        self.last = time.monotonic()

    def maybe_run(self) -> None:
        if self.conn is None or time.monotonic() - self.last < self.every:
            return
        before = sum(self.backend.cpu_times()[:2])
        self.conn.execute(f"VACUUM (ANALYZE) {self.TABLES}")
        self.cpu_seconds += sum(self.backend.cpu_times()[:2]) - before
        self.runs += 1
        self.last = time.monotonic()

    def describe(self) -> str:
        if self.conn is None:
            return f"server autovacuum {self.server_autovacuum}; the benchmark vacuumed nothing"
        return (
            f"server autovacuum off; the benchmark ran VACUUM (ANALYZE) every {self.every:g} s in its "
            f"place ({self.runs} runs, {self.cpu_seconds:.1f} s CPU, counted with PostgreSQL)"
        )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def max_calls_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit("stopped by SIGTERM")  # so the finally block stops every process it started


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--channels", type=int, default=300)
    parser.add_argument("--cps", type=float, default=30.0)
    parser.add_argument("--time-factor", type=float, default=3.5, help="simulated seconds per real second")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes (prefork children)")
    parser.add_argument(
        "--pool",
        choices=("prefork", "solo"),
        default="prefork",
        help="the Celery worker's pool: prefork (children take the tasks) or solo (the worker itself)",
    )
    parser.add_argument("--ramp-seconds", type=float, default=15.0, help="left out of the steady occupancy")
    parser.add_argument("--timeout", type=float, default=6 * 3600)
    parser.add_argument("--profile", action="store_true", help="run the owner under cProfile (owner.prof)")
    parser.add_argument(
        "--vacuum-seconds",
        type=float,
        default=60.0,
        help="when the server runs without autovacuum: VACUUM (ANALYZE) the dialer's tables this often "
        "in its place (its CPU is counted with PostgreSQL's); 0 never",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a dialer setting for every process (CALLCENTER_DIALER_NAME), e.g. release_kick_seconds=0.5",
    )
    args = parser.parse_args()

    name = f"cc_bench_dialer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    workdir = Path(tempfile.mkdtemp(prefix="bench_dialer_"))
    private = PrivateRedis(workdir)
    procs: Processes | None = None
    try:
        upgrade_database(url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        cipher = cipher_from_settings(Settings(env="test"))
        t0 = time.monotonic()
        with session_scope(sessions) as session:
            code = seed_dossiers(session, cipher, args.dossiers)
        with session_scope(sessions) as session:
            start_campaign(session, total=args.dossiers, agency_codes=[code], now=datetime.now(UTC))
        print(f"seeded {args.dossiers} dossiers and started the campaign in {time.monotonic() - t0:.1f} s")

        private.start()
        client = redis.Redis.from_url(private.url)
        pacer = Pacer(client, prefix=DialerSettings().redis_prefix)
        global_scope = Scope("global", channels=args.channels)
        call_log = workdir / "calls.jsonl"
        env = dialer_env(
            database_url=url,
            redis_url=private.url,
            trunk="simulator",
            simulator_time_factor=str(args.time_factor),
            simulator_call_log=str(call_log),
            max_channels=str(args.channels),
            simulator_max_channels=str(args.channels),
            max_cps=str(args.cps),
            **{"release_batch": "500", **dict(item.split("=", 1) for item in args.set)},
        )
        procs = Processes(env, workdir)
        if args.profile:
            procs.start("owner", sys.executable, "-m", "cProfile", "-o", str(workdir / "owner.prof"),
                        "-m", "callcenter", "ami-owner", "--metrics-port", "0")  # fmt: skip
        else:
            procs.owner()
        procs.worker("w1", concurrency=args.workers, pool=args.pool)
        procs.beat()
        time.sleep(3)  # imports, connections
        roots = [p.pid for p in procs.procs.values()] + [private.proc.pid if private.proc else 0]
        ours = tree(roots)
        backends = BackendCpu(name)
        cpu_start = cpu_seconds(ours)
        role_start = {role: cpu_seconds(tree([proc.pid])) for role, proc in procs.procs.items()}
        started = time.monotonic()
        load_start = os.getloadavg()[0]

        vacuum = InPlaceOfAutovacuum(name, every=args.vacuum_seconds)
        probe = SpeedProbe()
        probe.start()
        samples: list[tuple[float, int]] = []
        # The steady window, from the end of the ramp to the moment nothing waits any more: (time, our
        # CPU, PostgreSQL's, finished attempts) at both edges. Start-up, ramp and the last calls' tail
        # are left out, so runs of different lengths (and code) compare like with like.
        window: list[tuple[float, float, float, int]] = []
        waiting = args.dossiers
        last_print = 0.0
        while time.monotonic() - started < args.timeout:
            now = time.monotonic() - started
            with session_scope(sessions) as session:
                waiting = (
                    session.scalar(
                        select(func.count()).select_from(CallTarget).where(CallTarget.state == "queued")
                    )
                    or 0
                )
                in_call = (
                    session.scalar(
                        select(func.count()).select_from(CallTarget).where(CallTarget.state == "in_call")
                    )
                    or 0
                )
                if (not window and now >= args.ramp_seconds) or (len(window) == 1 and waiting == 0):
                    backends.sample()
                    done = session.scalar(
                        select(func.count()).select_from(CallAttempt).where(CallAttempt.status == "finished")
                    )
                    pg_now = backends.total() + vacuum.cpu_seconds
                    window.append((now, cpu_seconds(tree(roots)) - cpu_start, pg_now, int(done or 0)))
            leased = pacer.usage([global_scope])[0].in_use
            if waiting > 0:
                samples.append((now, int(leased)))
            if now - last_print >= 15:
                last_print = now
                print(
                    f"  t={now:6.0f}s waiting={waiting:6d} in_call={in_call:4d} channels={leased:4d}",
                    flush=True,
                )
            if waiting == 0 and in_call == 0:
                break
            vacuum.maybe_run()
            backends.maybe_sample()
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        ours = tree(roots)  # children that appeared since
        cpu_total = cpu_seconds(ours) - cpu_start
        by_role = {
            role: round(cpu_seconds(tree([proc.pid])) - role_start.get(role, 0.0), 1)
            for role, proc in procs.procs.items()
        }
        backends.sample()
        pg_total = backends.total() + vacuum.cpu_seconds
        vacuum.close()
        with session_scope(sessions) as session:
            by_status = dict(
                session.execute(select(CallAttempt.status, func.count()).group_by(CallAttempt.status)).all()
            )
            outcomes = dict(
                session.execute(
                    select(CallAttempt.outcome, func.count())
                    .where(CallAttempt.status == AttemptStatus.FINISHED.value)
                    .group_by(CallAttempt.outcome)
                ).all()
            )
        engine.dispose()
        placed = [json.loads(line)["t"] for line in call_log.read_text().splitlines()]
        finished = by_status.get("finished", 0)
        occupancy = [n / args.channels for _, n in samples]
        steady = [n / args.channels for t, n in samples if t >= args.ramp_seconds]
        result = {
            "dossiers": args.dossiers,
            "channels": args.channels,
            "cps_cap": args.cps,
            "time_factor": args.time_factor,
            "wall_seconds": round(elapsed, 1),
            "finished_attempts": finished,
            "cancelled_attempts": by_status.get("cancelled", 0),
            "outcomes": outcomes,
            "completed_calls_per_second": round(finished / elapsed, 2),
            "occupancy_while_work_remains": round(statistics.fmean(occupancy), 3) if occupancy else None,
            "occupancy_after_ramp": round(statistics.fmean(steady), 3) if steady else None,
            "max_calls_in_any_1s_window": max_calls_in_window(placed),
            "calls_placed": len(placed),
            "cpu_ms_per_call_our_processes": round(1000 * cpu_total / max(1, finished), 2),
            "cpu_ms_per_call_with_postgres": round(1000 * (cpu_total + pg_total) / max(1, finished), 2),
            "cpu_seconds_by_process": {**by_role, "postgres_backends": round(pg_total, 1)},
            "steady_window": steady_window(window),
            "speed_probe_ms": probe.stop(),
            "autovacuum": vacuum.describe(),
            "load_average_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
            "settings": args.set,
            "celery_pool": args.pool,
        }
        print(json.dumps(result, indent=2))
        print(f"work directory (logs, call log, profiles): {workdir}")
    finally:
        if procs is not None:
            procs.stop_all()
        private.kill()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
