"""Run every benchmark of the project and print one table: benchmark, figure, goal, measured, met.

    .venv/bin/python scripts/bench_all.py                  # every benchmark at its issue's size
    .venv/bin/python scripts/bench_all.py --quick          # smaller sizes, for a quick look
    .venv/bin/python scripts/bench_all.py --only asr agi   # a subset; results merge into the stored file
    .venv/bin/python scripts/bench_all.py --from-json --write-readme

Each benchmark runs alone (one after another, never in parallel) as its own process; its output is kept
in ``var/bench/<name>.log`` and its figures are read from that output. Results are stored in
``docs/benchmarks.json`` with the date, the command and the load average before and after, so figures
from earlier runs stay with their own dates. ``--write-readme`` renders the stored results into README.md
between ``<!-- bench:start -->`` and ``<!-- bench:end -->``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "docs" / "benchmarks.json"
README = ROOT / "README.md"
LOGS = ROOT / "var" / "bench"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

Figure = dict[str, object]


def _figure(figure: str, goal: str, measured: str, met: bool | None) -> Figure:
    return {"figure": figure, "goal": goal, "measured": measured, "met": met}


def _last_json_object(text: str) -> dict[str, object]:
    """The last top-level JSON object printed (the benchmark's result dict)."""
    starts = [m.start() for m in re.finditer(r"^\{", text, flags=re.M)]
    for start in reversed(starts):
        depth = 0
        for i, ch in enumerate(text[start:], start):
            depth += ch == "{"
            depth -= ch == "}"
            if depth == 0:
                try:
                    return json.loads(text[start : i + 1])
                except json.JSONDecodeError:
                    break
    raise ValueError("no JSON result in the benchmark's output")


def parse_intake(out: str, _json: Path) -> list[Figure]:
    rows = {
        name: re.search(rf"│\s+{name}\s+│\s+([\d.]+)\s+│\s+([\d,]+)", out) for name in ("import", "re-import")
    }
    figures = []
    first, again = rows["import"], rows["re-import"]
    if first:
        seconds, rate = float(first.group(1)), int(first.group(2).replace(",", ""))
        figures.append(
            _figure(
                "first import, rows/s (s)",
                "≥ 50,000/s, ≤ 20 s",
                f"{rate:,} ({seconds:.1f} s)",
                rate >= 50_000,
            )
        )
    if again:
        seconds = float(again.group(1))
        figures.append(_figure("re-import of the same file", "≤ 20 s", f"{seconds:.1f} s", seconds <= 20))
    memory = re.search(r"main (\d+) MB, worker (\d+)", out)
    if memory:
        peak = max(int(memory.group(1)), int(memory.group(2)))
        figures.append(
            _figure(
                "peak memory",
                "< 500 MB",
                f"main {memory.group(1)} MB, worker {memory.group(2)} MB",
                peak < 500,
            )
        )
    return figures


def parse_campaign(out: str, _json: Path) -> list[Figure]:
    found = re.search(r"create_campaign .*?: ([\d.]+) s", out)
    dossiers = re.search(r"dossiers loaded .*?: ([\d,]+)", out)
    if not found:
        return []
    seconds = float(found.group(1))
    size = dossiers.group(1) if dossiers else "?"
    return [_figure(f"campaign created over {size} dossiers", "< 10 s", f"{seconds:.2f} s", seconds < 10)]


def parse_dialer(out: str, _json: Path) -> list[Figure]:
    r = _last_json_object(out)
    occupancy = float(r["occupancy_while_work_remains"] or 0)  # type: ignore[arg-type]
    cap = float(r["cps_cap"])  # type: ignore[arg-type]
    max_cps = int(r["max_calls_in_any_1s_window"])  # type: ignore[call-overload]
    cpu = float(r["cpu_ms_per_call_our_processes"])  # type: ignore[arg-type]
    cpu_pg = float(r["cpu_ms_per_call_with_postgres"])  # type: ignore[arg-type]
    size = f"{r['dossiers']:,} dossiers, {r['channels']} channels"
    finished = int(r["finished_attempts"])  # type: ignore[call-overload]
    return [
        _figure(f"completed calls/s ({size})", "—", f"{r['completed_calls_per_second']}", None),
        _figure("wall time / finished attempts", "—", f"{r['wall_seconds']} s / {finished:,}", None),
        _figure("channel occupancy while work remains", "≥ 95 %", f"{occupancy:.0%}", occupancy >= 0.95),
        _figure("highest calls in any 1 s window", f"≤ {cap:g}", str(max_cps), max_cps <= cap),
        _figure(
            "CPU ms per completed call (all processes)",
            "≤ 8 ms",
            f"{cpu:.1f} ({cpu_pg:.1f} with PostgreSQL)",
            cpu_pg <= 8,  # "summed over all processes": PostgreSQL's backends are processes too
        ),
    ]


def parse_agi(out: str, _json: Path) -> list[Figure]:
    r = _last_json_object(out)
    p99 = float(r["reply_ms"]["p99"])  # type: ignore[index]
    rss = float(r["server_rss_peak_mb"])  # type: ignore[arg-type]
    server = re.search(r"server side: .*?p99 ([\d.]+) ms", out)
    server_p99 = f"; server-side {server.group(1)} ms" if server else ""
    return [
        _figure(
            "p99 reply per AGI command, 500 sessions", "< 20 ms", f"{p99:.1f} ms client{server_p99}", p99 < 20
        ),
        _figure("AGI server peak RSS", "< 300 MB", f"{rss:.0f} MB", rss < 300),
    ]


def parse_asr(out: str, json_path: Path) -> list[Figure]:
    r = json.loads(json_path.read_text())
    figures = []
    for name, e in r["engines"].items():
        rtf = float(e["rtf_clips"])
        goal = "≤ 0.25" if name == "viet-asr" else "—"
        figures.append(
            _figure(
                f"{name}: RTF on 8 kHz clips (load s, RSS MB)",
                goal,
                f"{rtf:.3f} ({e['load_seconds']:.2f} s, {e['rss_mb']:.0f} MB)",
                rtf <= 0.25 if name == "viet-asr" else None,
            )
        )
    wrong = re.search(r"wrong decisions: (\d+)/(\d+)", out)
    reask = re.search(r"re-asks:\s+(\d+)/(\d+)", out)
    if wrong:
        w, n = int(wrong.group(1)), int(wrong.group(2))
        figures.append(
            _figure("yes/no wrong decisions, real clips", "≤ 1 in 50", f"{w}/{n}", w / n <= 1 / 50)
        )
    if reask:
        a, n = int(reask.group(1)), int(reask.group(2))
        figures.append(_figure("yes/no re-asks, real clips", "≤ 1 in 10", f"{a}/{n}", a / n <= 1 / 10))
    overall = re.search(r"^\s+all\s+([\d.]+) / ([\d.]+)\s+([\d.]+) / ([\d.]+)", out, flags=re.M)
    if overall:
        figures.append(
            _figure(
                "comment classifier precision / recall",
                "—",
                f"{overall.group(1)}/{overall.group(2)} development, "
                f"{overall.group(3)}/{overall.group(4)} unseen",
                None,
            )
        )
    return figures


def parse_report(out: str, _json: Path) -> list[Figure]:
    found = re.search(r"RESULT summary median ([\d.]+) s .*?report median ([\d.]+) s", out)
    if not found:
        return []
    summary, report = float(found.group(1)), float(found.group(2))
    return [
        _figure("city summary (JSON), year, 1M call results", "< 2 s", f"{summary:.2f} s", summary < 2),
        _figure("city report HTML + XLSX", "< 15 s", f"{report:.2f} s", report < 15),
    ]


@dataclass(frozen=True)
class Bench:
    name: str
    issue: int
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    parse: Callable[[str, Path], list[Figure]]
    json_flag: bool = False


BENCHES = (
    Bench("intake", 2, "bench_intake.py", ("--rows", "1000000", "--workers", "1"), ("--rows", "100000"),
          parse_intake),
    Bench("campaign", 3, "bench_campaign.py", (), ("--dossiers", "20000"), parse_campaign),
    # The issue's size is 100,000 dossiers (about an hour at 30 calls/s); the default here is 3,000.
    Bench("dialer", 4, "bench_dialer.py", ("--dossiers", "3000"), ("--dossiers", "1000"), parse_dialer),
    Bench("agi", 5, "bench_agi.py", ("--sessions", "500"), ("--sessions", "100"), parse_agi),
    Bench("asr", 6, "bench_asr.py", (), (), parse_asr, json_flag=True),
    Bench("report", 7, "bench_report.py", (), ("--attempts", "100000"), parse_report),
)  # fmt: skip


def run(bench: Bench, *, quick: bool) -> dict[str, object]:
    LOGS.mkdir(parents=True, exist_ok=True)
    json_path = Path(tempfile.mkstemp(suffix=".json")[1])
    args = [sys.executable, str(ROOT / "scripts" / bench.script), *(bench.quick if quick else bench.full)]
    if bench.json_flag:
        args += ["--json", str(json_path)]
    load_before = os.getloadavg()
    started = time.monotonic()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=3 * 3600)
    elapsed = time.monotonic() - started
    log = LOGS / f"{bench.name}.log"
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr, encoding="utf-8")
    try:
        figures = bench.parse(proc.stdout, json_path)
    except (ValueError, KeyError, OSError) as exc:
        figures = [_figure("run", "—", f"could not read figures ({exc}); see {log}", False)]
    json_path.unlink(missing_ok=True)
    return {
        "issue": bench.issue,
        "date": date.today().isoformat(),
        "command": " ".join(["python", f"scripts/{bench.script}", *(bench.quick if quick else bench.full)]),
        "exit_code": proc.returncode,
        "seconds": round(elapsed, 1),
        "cores": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "figures": figures,
    }


def render_markdown(store: dict[str, dict[str, object]]) -> str:
    lines = [
        "| issue | benchmark | figure | goal | measured | met | command (date, load before → after) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in [b.name for b in BENCHES if b.name in store]:
        entry = store[name]
        if entry.get("load_before") is None:  # recorded from an earlier run's output (--record)
            when = f"{entry['date']}, {entry.get('note', 'recorded from its output')}"
        else:
            when = f"{entry['date']}, load {entry['load_before'][0]} → {entry['load_after'][0]}"  # type: ignore[index]
        for f in entry["figures"]:  # type: ignore[attr-defined]
            met = {True: "yes", False: "**no**", None: "—"}[f["met"]]
            lines.append(
                f"| {entry['issue']} | {name} | {f['figure']} | {f['goal']} | {f['measured']} | {met} "
                f"| `{entry['command']}` ({when}) |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES])
    parser.add_argument("--quick", action="store_true", help="smaller sizes than the issues name")
    parser.add_argument("--from-json", action="store_true", help="run nothing; use docs/benchmarks.json")
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument(
        "--record",
        nargs=2,
        metavar=("NAME", "OUTPUT"),
        help="run nothing; read the figures of a benchmark run by hand from its saved output "
        "(for runs too long for this script, e.g. the dialer's 100,000 dossiers); needs --command",
    )
    parser.add_argument("--command", help="with --record: the command that produced OUTPUT")
    parser.add_argument("--note", default="", help="with --record: load or other context of that run")
    args = parser.parse_args()
    if args.record and not args.command:
        parser.error("--record needs --command (the command line that produced the output)")

    store: dict[str, dict[str, object]] = json.loads(STORE.read_text()) if STORE.exists() else {}
    if args.record:
        name, output = args.record
        bench = next((b for b in BENCHES if b.name == name), None)
        if bench is None:
            parser.error(f"--record: no benchmark named {name!r} ({', '.join(b.name for b in BENCHES)})")
        out = Path(output).read_text(encoding="utf-8")
        store[name] = {
            "issue": bench.issue,
            "date": date.fromtimestamp(Path(output).stat().st_mtime).isoformat(),
            "command": args.command,
            "exit_code": None,
            "cores": os.cpu_count(),
            "load_before": None,
            "load_after": None,
            "note": args.note or f"recorded from {Path(output).name}",
            "figures": bench.parse(out, Path(output)),
        }
        STORE.write_text(json.dumps(store, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    elif not args.from_json:
        for bench in BENCHES:
            if args.only and bench.name not in args.only:
                continue
            print(f"running {bench.name} …", flush=True)
            store[bench.name] = run(bench, quick=args.quick)
            STORE.write_text(json.dumps(store, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    table = Table(title="Benchmarks")
    for column in ("issue", "benchmark", "figure", "goal", "measured", "met"):
        table.add_column(column)
    for name in [b.name for b in BENCHES if b.name in store]:
        entry = store[name]
        for f in entry["figures"]:  # type: ignore[attr-defined]
            met = {True: "yes", False: "NO", None: "—"}[f["met"]]
            table.add_row(str(entry["issue"]), name, f["figure"], f["goal"], f["measured"], met)
    Console(width=160).print(table)

    if args.write_readme:
        text = README.read_text(encoding="utf-8")
        if START not in text or END not in text:
            print(f"README.md has no {START} … {END} markers; not written", file=sys.stderr)
            return 2
        head, rest = text.split(START, 1)
        _old, tail = rest.split(END, 1)
        README.write_text(head + START + "\n" + render_markdown(store) + END + tail, encoding="utf-8")
        print("README.md performance section written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
