"""Benchmark: 500 concurrent AGI sessions through the whole survey against ONE agi-server process.

    .venv/bin/python scripts/bench_agi.py [--sessions 500] [--think-ms 1000] [--ramp-s 5]
        [--pg-admin "host=127.0.0.1 user=postgres dbname=postgres"] [--profile server.prof]

What it does:
1. creates a scratch PostgreSQL database, migrates it, inserts dossiers (20 agencies × fields);
2. renders the prompts (static ones as ``scripts/build_prompts.py`` does, and the dossier sentences,
   as the first calls would) into a scratch var dir;
3. starts ``callcenter agi-server`` as a subprocess (speech off: keys only);
4. starts the clients in *another* process: N fake Asterisk channels (``callcenter.ivr.agi_testing``)
   replaying the recorded citizens of ../shared/fixtures/asterisk (full survey, partial, silent,
   hang-up during the comment, hang-up after 1 s), arriving over ``--ramp-s`` seconds and all on
   the line together, each waiting a random 0..2×think-ms before every reply (prompt playback and
   the citizen's keys, compressed: real prompts last 2-9 s);
5. measures, per AGI command, the server's reply time (our reply sent → the server's next command
   received), and samples the server's resident memory every 50 ms;
6. checks every call stored its response, then drops the database.

Goals (issue 5): p99 reply time < 20 ms, server RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psutil
import psycopg
import redis
from sqlalchemy import func
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session

from callcenter.core.db import make_engine, upgrade_database
from callcenter.core.pii import PiiCipher
from callcenter.core.settings import Settings
from callcenter.intake.models import Agency, Dossier, Field
from callcenter.ivr import constants as c
from callcenter.ivr.agi_testing import FakeAsterisk
from callcenter.ivr.context import load_call_context
from callcenter.ivr.flow import CallContext, SurveyFlow
from callcenter.ivr.models import SurveyResponse
from callcenter.ivr.questionnaire import load_questionnaire
from callcenter.ivr.tts import PromptLibrary, default_engines

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "asterisk"
SCENARIOS = ["answer", "answer-partial", "answered-silent", "answer-comment-hangup", "hangup-after-1s"]
AGENCIES = [
    "Sở Tư pháp", "Sở Xây dựng", "Sở Nông nghiệp và Môi trường", "Sở Tài chính", "Sở Y tế",
    "Sở Nội vụ", "Sở Khoa học và Công nghệ", "Công an thành phố",
    "Ủy ban nhân dân phường Hải Châu", "Ủy ban nhân dân phường Thanh Khê",
]  # fmt: skip
FIELDS = ["Hộ tịch", "Đất đai", "Xây dựng", "Đăng ký kinh doanh", "Y tế"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------------------------ client side


async def run_clients(
    port: int, calls: list[tuple[int, int, str]], think: float, ramp: float, seed: int
) -> dict[str, object]:
    fakes = [
        FakeAsterisk.from_recording(
            FIXTURES / f"agi-{scenario}.jsonl",
            variables={c.VAR_ATTEMPT_ID: str(attempt), c.VAR_DOSSIER_ID: str(dossier)},
            think_time=think,
            seed=seed + attempt,
            write_recordings=True,  # as Asterisk does: the server seals each comment recording
        )
        for attempt, dossier, scenario in calls
    ]
    in_flight = 0
    peak = 0
    gc.collect()  # the fakes and their recordings stay to the end: keep full collections off them
    gc.freeze()

    async def one(index: int, fake: FakeAsterisk) -> None:
        nonlocal in_flight, peak
        await asyncio.sleep(ramp * index / len(fakes))  # calls arrive as a dialer paces them
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await fake.run("127.0.0.1", port, max_commands=500)
        finally:
            in_flight -= 1

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i, f) for i, f in enumerate(fakes)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    times = [t for f in fakes for t in f.stats.reply_times[1:]]  # [0] is env → first command
    first = [f.stats.reply_times[0] for f in fakes if f.stats.reply_times]
    by_verb: dict[str, list[float]] = {}
    for f in fakes:
        for command, seconds in zip(f.stats.commands[1:], f.stats.reply_times[1:], strict=True):
            by_verb.setdefault(" ".join(command.split(" ")[:2]), []).append(seconds)
    return {
        "sessions": len(fakes),
        "peak_concurrent": peak,
        "errors": errors[:5],
        "error_count": len(errors),
        "commands": len(times) + len(first),
        "elapsed_s": elapsed,
        "reply_ms": {
            "p50": percentile(times, 0.50) * 1000,
            "p95": percentile(times, 0.95) * 1000,
            "p99": percentile(times, 0.99) * 1000,
            "max": max(times) * 1000,
            "mean": statistics.fmean(times) * 1000,
        },
        "first_command_ms_p99": percentile(first, 0.99) * 1000,
        "p99_ms_by_next_command": {
            verb: round(percentile(v, 0.99) * 1000, 2) for verb, v in sorted(by_verb.items())
        },
        "closed_by_server": sum(f.stats.closed_by_server for f in fakes),
    }


def client_main(args: argparse.Namespace) -> None:
    calls = [tuple(x) for x in json.loads(Path(args.calls).read_text())]
    result = asyncio.run(run_clients(args.port, calls, args.think_ms / 1000, args.ramp_s, args.seed))  # type: ignore[arg-type]
    print(json.dumps(result))


# ------------------------------------------------------------------------------------ orchestrator


def queued_followups(broker: str) -> dict[str, int]:
    """Messages the server queued (alerts, transcriptions) in the scratch broker db, then flush it."""
    client = redis.Redis.from_url(broker)
    try:
        return {queue: int(client.llen(queue)) for queue in ("analysis", "asr")}
    finally:
        client.flushdb()
        client.close()


def setup_database(
    pg_admin: str, sessions: int, cipher: PiiCipher
) -> tuple[str, str, list[tuple[int, int, str]]]:
    name = f"cc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    upgrade_database(url)
    engine = make_engine(url)
    rng = random.Random(1022)
    calls: list[tuple[int, int, str]] = []
    with Session(engine) as session:
        agencies = [Agency(code=f"A{i}", name=n) for i, n in enumerate(AGENCIES)]
        fields = [Field(code=f"F{i}", name=n) for i, n in enumerate(FIELDS)]
        session.add_all(agencies + fields)
        session.flush()
        now = datetime(2026, 11, 1, tzinfo=UTC)
        dossiers = []
        for i in range(sessions):
            phone = f"+8490{5_000_000 + i:07d}"
            dossiers.append(
                Dossier(
                    source="bench", code=f"HS{i:06d}", agency_id=rng.choice(agencies).id,
                    field_id=rng.choice(fields).id, submitter_name_enc=cipher.encrypt("Nguyễn Văn An"),
                    phone_enc=cipher.encrypt(phone), phone_hash=cipher.phone_hash(phone), phone_kind="mobile",
                    received_at=now, due_at=now, returned_at=now + timedelta(days=rng.randint(0, 20)),
                    status="returned", timeliness="late", content_hash="0" * 64,
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
        session.add_all(dossiers)
        session.commit()
        for i, dossier in enumerate(dossiers):
            calls.append((100_000 + i, dossier.id, SCENARIOS[i % len(SCENARIOS)]))
    engine.dispose()
    return name, url, calls


def warm_prompts(var_dir: Path, url: str) -> int:
    """Render the static prompts and every dossier sentence, as build_prompts and first calls would."""
    questionnaire = load_questionnaire()
    library = PromptLibrary(var_dir / "prompts", default_engines(gtts_timeout=0.5))
    texts = set(questionnaire.static_texts().values())
    engine = make_engine(url)
    with Session(engine) as session:
        for (dossier_id,) in session.execute(sql_select(Dossier.id)):
            ctx: CallContext = load_call_context(session, dossier_id=dossier_id)
            flow = SurveyFlow(questionnaire, ctx)
            texts.update(u.text for action in flow.start() for u in getattr(action, "prompt", ()))
    engine.dispose()
    for text in texts:
        library.render(text)
    return len(texts)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument(
        "--think-ms",
        type=float,
        default=1000.0,
        help="mean wait before each reply (prompt playback, compressed)",
    )
    parser.add_argument("--ramp-s", type=float, default=5.0, help="calls start spread over this many seconds")
    parser.add_argument("--pg-admin", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--broker", default="redis://127.0.0.1:6379/12", help="scratch Redis db for follow-up tasks (flushed)"
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of the server's event loop here")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--calls", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return 0

    settings = Settings(env="test")
    cipher = PiiCipher(settings.pii_key_bytes, settings.phone_hash_key.get_secret_value().encode())
    print(f"setting up {args.sessions} dossiers in a scratch PostgreSQL database…", flush=True)
    db_name, url, calls = setup_database(args.pg_admin, args.sessions, cipher)
    queued_followups(args.broker)  # start from an empty scratch broker db
    work = Path(tempfile.mkdtemp(prefix="bench-agi-"))
    server: subprocess.Popen[str] | None = None
    try:
        rendered = warm_prompts(work / "var", url)
        print(f"{rendered} prompts rendered into {work / 'var' / 'prompts'}", flush=True)
        env = os.environ | {
            "CALLCENTER_ENV": "test",
            "CALLCENTER_DATABASE_URL": url,
            "CALLCENTER_VAR_DIR": str(work / "var"),
            "CALLCENTER_IVR_RECORDINGS_DIR": str(work / "recordings"),
            "CALLCENTER_LOG_LEVEL": "INFO",
            # The follow-up tasks (alerts, transcriptions) go to a scratch Redis database, counted below.
            "CALLCENTER_BROKER_URL": args.broker,
        }
        server = subprocess.Popen(
            [sys.executable, *(["-m", "cProfile", "-o", str(args.profile)] if args.profile else []),
             "-m", "callcenter", "agi-server", "--host", "127.0.0.1", "--port", "0", "--no-speech"],
            stdout=subprocess.PIPE, stderr=(work / "server.log").open("w"), env=env, cwd=ROOT, text=True,
        )  # fmt: skip
        assert server.stdout is not None
        if not select.select([server.stdout], [], [], 60)[0]:
            raise SystemExit("agi-server did not start")
        port = int(server.stdout.readline().split()[1])
        proc = psutil.Process(server.pid)
        idle_rss = proc.memory_info().rss
        peak_rss = idle_rss
        sampling = True

        def sample() -> None:
            nonlocal peak_rss
            while sampling:
                try:
                    peak_rss = max(peak_rss, proc.memory_info().rss)
                except psutil.Error:
                    return
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        calls_file = work / "calls.json"
        calls_file.write_text(json.dumps(calls))
        print(
            f"agi-server pid {server.pid} on port {port}; starting {len(calls)} concurrent sessions…",
            flush=True,
        )
        cpu_before = proc.cpu_times()
        load_before = os.getloadavg()
        client = subprocess.run(
            [sys.executable, __file__, "--client", "--port", str(port), "--calls", str(calls_file),
             "--think-ms", str(args.think_ms), "--ramp-s", str(args.ramp_s), "--seed", str(args.seed)],
            capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
        sampling = False
        sampler.join()
        cpu_after = proc.cpu_times()
        if client.returncode != 0:
            print(client.stderr, file=sys.stderr)
            return 1
        result = json.loads(client.stdout.strip().splitlines()[-1])
        engine = make_engine(url)
        with Session(engine) as session:
            stored = session.scalar(sql_select(func.count()).select_from(SurveyResponse)) or 0
            by_status = dict(
                session.execute(
                    sql_select(SurveyResponse.status, func.count()).group_by(SurveyResponse.status)
                ).all()
            )
        engine.dispose()
        result.update(
            server_rss_idle_mb=idle_rss / 2**20,
            server_rss_peak_mb=peak_rss / 2**20,
            server_cpu_s=(cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
            responses_stored=stored,
            responses_by_status=by_status,
            followups_queued=queued_followups(args.broker),
            recordings_sealed=len(list((work / "recordings").glob("*.wav.enc"))),
            recordings_left_clear=len(list((work / "recordings").glob("*.wav"))),
            think_ms=args.think_ms,
            ramp_s=args.ramp_s,
            machine=f"{os.cpu_count()} cores (shared)",
            load_average_before=load_before,
            load_average_after=os.getloadavg(),
            date=date.today().isoformat(),
        )
        print(json.dumps(result, indent=2, ensure_ascii=False))
        p99 = result["reply_ms"]["p99"]
        ok = (
            p99 < 20 and peak_rss < 300 * 2**20 and stored == len(calls) and not result["error_count"]
            and result["peak_concurrent"] == len(calls)
        )  # fmt: skip
        print(
            f"\np99 reply {p99:.2f} ms (goal < 20), peak RSS {peak_rss / 2**20:.0f} MB (goal < 300), "
            f"{stored}/{len(calls)} responses stored, {result['peak_concurrent']} sessions at once: "
            + ("PASS" if ok else "FAIL")
        )
        server.send_signal(signal.SIGTERM)  # the server logs its own reply-time summary on exit
        server.wait(timeout=60)
        server_log = (work / "server.log").read_text()
        summary = next((line for line in server_log.splitlines() if "AGI turnaround" in line), "")
        print("server side: " + summary.split("; ", 1)[-1])
        log_tail = server_log[-2000:]
        if "Traceback" in log_tail:
            print("server log:\n" + log_tail, file=sys.stderr)
        return 0 if ok else 1
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if server is not None and server.stdout is not None:
            server.stdout.close()
        with psycopg.connect(args.pg_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


if __name__ == "__main__":
    raise SystemExit(main())
