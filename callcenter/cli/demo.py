"""``callcenter demo``: the whole survey on the embedded default, in one process, in compressed time.

What runs is the production code path, only hosted in one process:

1. intake — the one-stop simulator (a stand-in for the province's system) serves synthetic dossiers
   over HTTP; the real REST connector pulls them into SQLite, personal data encrypted;
2. campaign — the Da Nang sample-size rule per agency, a stratified draw (late/overdue first);
3. dialer — ``release_due`` / ``place_call`` / ``reap`` (what Celery workers and beat run) on threads,
   and the trunk owner hosting the simulated exchange; every answered call runs the real Vietnamese IVR
   flow engine and database recorder against a scripted citizen;
4. analysis — the city report, HTML with charts and an XLSX workbook, and a summary table.

Time is compressed (``--time-factor``): the campaign starts at the next open calling window after
now, local time, and its calling windows, lunch break and retry delays pass ``factor`` times faster.
Redis: a running Redis at the configured URL is used (under a key prefix of its own) when reachable;
otherwise an in-process Redis (fakeredis, Lua included) stands in, and the output says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from callcenter.analysis import report as report_module
from callcenter.analysis.labels import reason_labels
from callcenter.analysis.periods import Period, PeriodKind
from callcenter.campaign.calendar_store import holiday_days
from callcenter.campaign.lifecycle import campaign_calendar, get_campaign, start_campaign, stop_campaign
from callcenter.campaign.lists import create_campaign
from callcenter.campaign.models import CallTarget, CampaignStatus, TargetState
from callcenter.campaign.reporting import campaign_report
from callcenter.campaign.schemas import CampaignSpec
from callcenter.campaign.windows import CallingCalendar
from callcenter.core.clock import VN_TZ, CompressedClock, SystemClock
from callcenter.core.db import session_scope, upgrade_database
from callcenter.core.runtime import Runtime, build_runtime
from callcenter.core.settings import Settings, get_settings
from callcenter.dialer import dispatch
from callcenter.dialer.context import DialerContext
from callcenter.dialer.owner import TrunkOwner, build_owned_trunks
from callcenter.dialer.pacing import Pacer
from callcenter.dialer.settings import DialerSettings
from callcenter.dialer.trunks import RedisKeys
from callcenter.intake.demo import run_demo_intake
from callcenter.intake.models import Agency, Dossier

console = Console(width=None if Console().is_terminal else 120)

# Timeouts the reaper compares with the (compressed) runtime clock are given in simulated seconds.
_SIMULATED_TIMEOUTS = (
    "queued_timeout_seconds",
    "queued_max_age_seconds",
    "claimed_timeout_seconds",
    "dialing_timeout_seconds",
    "call_timeout_seconds",
)


@dataclass
class RedisChoice:
    sync: Any
    asyncio: Any
    description: str


def choose_redis(url: str) -> RedisChoice:
    """A running Redis when reachable, else an in-process one (fakeredis with Lua)."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
        client.ping()
        return RedisChoice(client, aioredis.Redis.from_url(url), f"Redis đang chạy tại {url}")
    except redis.RedisError:
        import fakeredis  # optional at run time: only the embedded fallback needs it

        server = fakeredis.FakeServer()
        return RedisChoice(
            fakeredis.FakeRedis(server=server),
            fakeredis.FakeAsyncRedis(server=server),
            "Redis trong tiến trình (fakeredis): không tìm thấy Redis đang chạy",
        )


def first_open_instant(runtime: Runtime, after: datetime) -> datetime:
    """The next instant calls may start, by the default windows and the holiday calendar."""
    with session_scope(runtime.sessions) as session:
        holidays = holiday_days(session, start=after, end=after + timedelta(days=60))
    opened = CallingCalendar(holidays=holidays).next_open(after)
    if opened is None:
        raise typer.BadParameter("no calling window opens within a year")
    return opened


class DialerHost:
    """What `callcenter worker`, `beat` and `ami-owner` do, hosted on threads of this process."""

    def __init__(self, runtime: Runtime, settings: DialerSettings, choice: RedisChoice) -> None:
        self.runtime = runtime
        self.settings = settings
        self.choice = choice
        self.ctx = DialerContext(
            runtime=runtime,
            settings=settings,
            redis=choice.sync,
            pacer=Pacer(choice.sync, prefix=settings.redis_prefix, cps_margin_ms=settings.cps_margin_ms),
            keys=RedisKeys(settings.redis_prefix),
            direct_trunk=None,
        )
        self.workers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="demo-worker")
        self._loop = asyncio.new_event_loop()
        self._owner: TrunkOwner | None = None
        self._owner_thread = threading.Thread(target=self._run_owner, name="demo-owner", daemon=True)
        self._owner_ready = threading.Event()
        self._owner_error: BaseException | None = None

    def _run_owner(self) -> None:
        asyncio.set_event_loop(self._loop)
        executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="demo-owner-db")
        try:
            trunks = build_owned_trunks(
                self.runtime, self.settings, redis=self.choice.asyncio, executor=executor
            )
            self._owner = TrunkOwner(
                runtime=self.runtime,
                settings=self.settings,
                trunks=trunks,
                redis=self.choice.asyncio,
                executor=executor,
            )
            self._owner_ready.set()
            self._loop.run_until_complete(self._owner.run())
            # Dials still being prepared when the owner stopped: cancel them rather than abandon them.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        except BaseException as exc:  # surfaced by the main thread; the demo must not hang silently
            self._owner_error = exc
            self._owner_ready.set()
        finally:
            executor.shutdown(wait=True)

    def start(self) -> None:
        self._owner_thread.start()
        self._owner_ready.wait(timeout=30)
        if self._owner_error is not None:
            raise RuntimeError(f"the trunk owner could not start: {self._owner_error!r}")

    def _place(self, attempt_id: int) -> None:
        self.workers.submit(dispatch.place_call, self.ctx, attempt_id)

    def tick(self, *, reap: bool) -> None:
        """One beat: release due attempts (placed by the worker pool) and, now and then, reap."""
        if self._owner_error is not None:
            raise RuntimeError(f"the trunk owner stopped: {self._owner_error!r}")
        dispatch.release_due(self.ctx, self._place)
        if reap:
            dispatch.reap(self.ctx, self._place)

    def stop(self) -> None:
        self.workers.shutdown(wait=True)
        if self._owner is not None:
            self._loop.call_soon_threadsafe(self._owner.stop)
        self._owner_thread.join(timeout=30)


def _target_counts(runtime: Runtime, campaign_id: int) -> dict[str, int]:
    with session_scope(runtime.sessions) as session:
        rows = session.execute(
            select(CallTarget.state, func.count())
            .where(CallTarget.campaign_id == campaign_id)
            .group_by(CallTarget.state)
        ).all()
    return {state: count for state, count in rows}


def _skip_idle_time(runtime: Runtime, clock: CompressedClock, campaign_id: int) -> None:
    """With no call in flight, jump the simulated clock over idle time: closed windows, retry waits."""
    with session_scope(runtime.sessions) as session:
        calendar = campaign_calendar(session, get_campaign(session, campaign_id=campaign_id))
        next_due = session.scalar(
            select(func.min(CallTarget.next_attempt_at)).where(
                CallTarget.campaign_id == campaign_id, CallTarget.state == TargetState.QUEUED.value
            )
        )
    if next_due is None:
        return
    opens = calendar.next_open(max(next_due, clock.now()))
    if opens is not None:
        clock.skip_to(opens)


def _summary_table(runtime: Runtime, campaign_id: int) -> Table:
    with session_scope(runtime.sessions) as session:
        status = campaign_report(session, campaign_id=campaign_id, now=runtime.clock.now())
    table = Table(title="Kết quả chiến dịch khảo sát (theo cơ quan)")
    for column, justify in (
        ("Cơ quan", "left"),
        ("Hồ sơ", "right"),
        ("Chỉ tiêu", "right"),
        ("Hoàn thành", "right"),
        ("Đạt", "right"),
        ("Cuộc gọi", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    totals = [0, 0, 0, 0]
    for agency in status.agencies:
        reached = "✓" if agency.completed >= agency.target else "—"
        table.add_row(
            agency.agency_name,
            str(agency.population),
            str(agency.target),
            str(agency.completed),
            reached,
            str(agency.attempts),
        )
        totals = [
            totals[0] + agency.population,
            totals[1] + agency.target,
            totals[2] + agency.completed,
            totals[3] + agency.attempts,
        ]
    table.add_row("Tổng", *(str(t) for t in totals[:3]), "", str(totals[3]), style="bold")
    return table


def _city_table(data: report_module.ReportData) -> Table:
    table = Table(title=f"Mức độ hài lòng — {data.scope_label}, {data.period.label_vi}")
    for column in ("Cơ quan", "Hoàn thành", "Hài lòng", "Khoảng tin cậy 95%", "Ước lượng có trọng số"):
        table.add_column(column, justify="left" if column == "Cơ quan" else "right")
    for row in data.summary.rows:
        f = row.figures
        if f.completed == 0:
            continue  # agencies outside this campaign
        interval = (
            f"{report_module.pct(f.satisfied_interval.low)} – {report_module.pct(f.satisfied_interval.high)}"
            if f.satisfied_interval
            else "—"
        )
        weighted = report_module.pct(f.weighted.estimate) if f.weighted else "—"
        table.add_row(
            row.agency_name or "—",
            str(f.completed),
            report_module.pct(f.satisfied_rate),
            interval,
            weighted,
        )
    return table


def run_demo(
    *,
    settings: Settings,
    dossiers: int,
    agencies: int,
    seed: int,
    time_factor: float,
    channels: int,
    cps: float,
    max_seconds: float,
    out_dir: Path,
    fresh: bool,
) -> tuple[Path, Path]:
    """Run the whole campaign; returns the paths of the HTML and XLSX reports."""
    if fresh and settings.database_url.startswith("sqlite:///"):
        db_path = Path(settings.database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    upgrade_database(settings.database_url)
    bootstrap = build_runtime(settings, clock=SystemClock())
    opens = first_open_instant(bootstrap, SystemClock().now())
    clock = CompressedClock(opens, time_factor)
    runtime = build_runtime(settings, clock=clock)
    bootstrap.engine.dispose()
    console.rule("[bold]Tổng đài 1022 — khảo sát mức độ hài lòng (bản chạy thử)")
    console.print(
        f"Cơ sở dữ liệu: {settings.database_url.split('@')[-1]}\n"
        f"Thời gian mô phỏng bắt đầu {opens.astimezone(VN_TZ):%H:%M %d/%m/%Y} (giờ Việt Nam), "
        f"nhanh gấp {time_factor:g} lần thời gian thực."
    )

    # 1. Intake from the one-stop simulator.
    with Progress(
        TextColumn("[bold]1. Nhận hồ sơ từ hệ thống một cửa (mô phỏng)"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("intake", total=dossiers)
        result = run_demo_intake(
            runtime,
            dossiers,
            seed,
            progress=lambda done: progress.update(task, completed=min(done, dossiers)),
        )
        progress.update(task, completed=dossiers)
    counts = result.counts
    console.print(
        f"   mới {counts.inserted}, cập nhật {counts.updated}, không đổi {counts.unchanged}, "
        f"cách ly (dòng lỗi) {counts.quarantined}"
    )

    # 2. The campaign: every agency, dossiers returned in the last 90 days.
    now = runtime.clock.now()
    local_today = now.astimezone(VN_TZ).date()
    with session_scope(runtime.sessions) as session:
        returned_from = session.scalar(select(func.min(Dossier.returned_at)))
    with session_scope(runtime.sessions) as session:
        busiest = session.execute(
            select(Agency.code)
            .join(Dossier, Dossier.agency_id == Agency.id)
            .where(Dossier.returned_at.is_not(None))
            .group_by(Agency.code)
            .order_by(func.count().desc(), Agency.code)
            .limit(agencies)
        ).scalars()
        agency_codes = list(busiest)
    spec = CampaignSpec(
        name=f"Khảo sát chạy thử {local_today:%d/%m/%Y}",
        policy="danang_2223",
        returned_from=(returned_from.astimezone(VN_TZ).date() if returned_from else local_today),
        returned_to=local_today,
        agencies=agency_codes,
        fields=None,
        starts_at=now,
        ends_at=now + timedelta(days=14),
        seed=seed,
    )
    with session_scope(runtime.sessions) as session:
        campaign = create_campaign(session, spec=spec, actor="demo", now=runtime.clock.now())
        start_campaign(session, campaign_id=campaign.id, actor="demo", now=runtime.clock.now())
        campaign_id = campaign.id
    console.print(f"[bold]2. Chiến dịch #{campaign_id}[/bold] đã lập danh sách gọi và bắt đầu.")

    # 3. Calls through the simulated exchange and the real IVR.
    base = DialerSettings()
    updates: dict[str, Any] = {
        "trunk": "simulator",
        "redis_prefix": f"cc:demo:{uuid.uuid4().hex[:8]}:",
        "max_channels": channels,
        "simulator_max_channels": channels,
        "max_cps": cps,
        "simulator_time_factor": time_factor,
        "simulator_seed": seed,
        "throttle_retry_seconds": base.throttle_retry_seconds * time_factor,
        "metrics_port": 0,
    }
    updates.update({name: getattr(base, name) * time_factor for name in _SIMULATED_TIMEOUTS})
    dialer_settings = base.model_copy(update=updates)
    choice = choose_redis(settings.redis_url)
    console.print(f"[bold]3. Gọi điện[/bold] qua tổng đài mô phỏng — {choice.description}.")
    host = DialerHost(runtime, dialer_settings, choice)
    host.start()
    started = time.monotonic()
    total = sum(_target_counts(runtime, campaign_id).values())
    open_states = {TargetState.QUEUED.value, TargetState.IN_CALL.value}
    try:
        with Progress(
            TextColumn("[bold]   cuộc gọi kết thúc"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("calls", total=total, detail="")
            last_reap = 0.0
            while True:
                elapsed = time.monotonic() - started
                reap = elapsed - last_reap >= 2.0
                if reap:
                    last_reap = elapsed
                host.tick(reap=reap)
                states = _target_counts(runtime, campaign_id)
                total = sum(states.values())
                settled = total - sum(states.get(s, 0) for s in open_states)
                sim_now = runtime.clock.now().astimezone(VN_TZ)
                progress.update(
                    task,
                    total=total,
                    completed=settled,
                    detail=f"hoàn thành {states.get(TargetState.COMPLETED.value, 0)} · {sim_now:%H:%M %d/%m}",
                )
                if settled >= total or elapsed > max_seconds:
                    break
                if states.get(TargetState.IN_CALL.value, 0) == 0:
                    _skip_idle_time(runtime, clock, campaign_id)
                time.sleep(0.2)
    finally:
        host.stop()
    with session_scope(runtime.sessions) as session:
        if get_campaign(session, campaign_id=campaign_id).status == CampaignStatus.RUNNING.value:
            stop_campaign(session, campaign_id=campaign_id, actor="demo", now=runtime.clock.now())
    console.print(_summary_table(runtime, campaign_id))

    # 4. The city report.
    with session_scope(runtime.sessions) as session:
        sim_now = runtime.clock.now()
        period = Period.containing(opens, PeriodKind.QUARTER)
        data = report_module.build_report(
            session,
            period=period,
            cipher=runtime.cipher,
            now=sim_now,
            reason_labels=reason_labels(settings.prompts_dir / "questionnaire.vi.yaml"),
        )
        html = report_module.render_html(data)
        xlsx = report_module.render_xlsx(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"bao-cao-thanh-pho-{period.key}.html"
    xlsx_path = out_dir / f"bao-cao-thanh-pho-{period.key}.xlsx"
    html_path.write_text(html, encoding="utf-8")
    xlsx_path.write_bytes(xlsx)
    console.print(_city_table(data))
    console.print(f"[bold]4. Báo cáo[/bold]:\n   {html_path}\n   {xlsx_path}")
    with contextlib.suppress(Exception):
        runtime.engine.dispose()
    return html_path, xlsx_path


def _positive(value: float) -> float:
    """A typer callback: refuse 0, negative and infinite rates (typer's min= is inclusive)."""
    if not (value > 0 and math.isfinite(value)):
        raise typer.BadParameter(f"must be a number greater than 0, not {value:g}")
    return value


# The bounds are checked while the options are parsed, before run_demo deletes the SQLite database.
def demo(
    dossiers: int = typer.Option(3000, min=1, help="Dossiers the one-stop simulator serves."),
    agencies: int = typer.Option(
        10, min=1, help="The campaign covers this many agencies (those with most dossiers)."
    ),
    seed: int = typer.Option(1022, help="Seed of the synthetic data, the draw and the simulated citizens."),
    time_factor: float = typer.Option(
        1000.0, callback=_positive, help="Simulated seconds per real second (greater than 0)."
    ),
    channels: int = typer.Option(60, min=1, help="Concurrent simulated calls."),
    cps: float = typer.Option(40.0, callback=_positive, help="Calls per second cap (greater than 0)."),
    max_seconds: float = typer.Option(100.0, min=0, help="Stop dialling after this many real seconds."),
    out: Path = typer.Option(Path("var/reports"), help="Where the HTML and XLSX reports go."),
    keep: bool = typer.Option(False, help="Keep the existing SQLite database instead of starting fresh."),
) -> None:
    """Run the whole survey on the embedded default: intake, campaign, calls, IVR, report."""
    started = time.monotonic()
    run_demo(
        settings=get_settings(),
        dossiers=dossiers,
        agencies=agencies,
        seed=seed,
        time_factor=time_factor,
        channels=channels,
        cps=cps,
        max_seconds=max_seconds,
        out_dir=out,
        fresh=not keep,
    )
    console.print(f"Xong sau {time.monotonic() - started:.0f} giây.")
