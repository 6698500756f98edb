"""The analysis command line against a committed SQLite database: keys, imports, staff phones, phúc tra."""

from __future__ import annotations

import getpass
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from callcenter.analysis import cli
from callcenter.analysis.models import AlertSubscription, Anomaly, ReverificationSample, StaffPhone
from callcenter.api.auth import hash_key
from callcenter.core.models import ApiKey, AuditLog
from callcenter.core.pii import PiiCipher
from callcenter.core.runtime import Runtime
from callcenter.ivr.models import SurveyResponse
from tests.cli_helpers import WIDE_RUNNER

from .conftest import Builder, cli_runtime


def _twelve_answers(build: Builder) -> None:
    a = build.agency("XD", "Sở Xây dựng")
    f = build.field("DD", "Đất đai")
    for day in range(1, 13):
        d = build.dossier(a, f, returned_at=datetime(2026, 3, day, tzinfo=UTC))
        build.called_response(d, a, f, at=datetime(2026, 3, day + 1, 3, tzinfo=UTC), satisfied=day % 4 != 0)


@pytest.fixture
def runtime(tmp_path: Path, cipher: PiiCipher, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    with cli_runtime(tmp_path, cipher, monkeypatch, _twelve_answers) as rt:
        yield rt


def test_apikey_issue(runtime: Runtime) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli.app, ["apikey", "issue", "--role", "agency", "--agency", "XD", "--name", "Sở XD"]
    )
    assert result.exit_code == 0, result.output
    raw = result.output.strip().splitlines()[-1]
    with runtime.sessions() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(raw)))
        assert row is not None and row.role == "agency" and row.agency_id is not None
    missing = runner.invoke(cli.app, ["apikey", "issue", "--role", "agency", "--name", "x"])
    assert missing.exit_code == 2 and "--agency" in missing.output
    wrong = runner.invoke(
        cli.app, ["apikey", "issue", "--role", "home_affairs", "--agency", "XD", "--name", "x"]
    )
    assert wrong.exit_code == 2
    unknown = runner.invoke(
        cli.app, ["apikey", "issue", "--role", "agency", "--agency", "NOPE", "--name", "x"]
    )
    assert unknown.exit_code == 2 and "NOPE" in unknown.output


def test_import_results_reports_rows_and_writes_nothing_on_error(runtime: Runtime, tmp_path: Path) -> None:
    bad = tmp_path / "web.csv"
    bad.write_text(
        "Mã phiếu,Mã cơ quan,Thời gian đánh giá,Mức độ hài lòng\n"
        "W1,XD,01/03/2026,Hài lòng\nW2,XX,01/03/2026,?\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    result = runner.invoke(cli.app, ["import-results", str(bad), "--channel", "web"])
    assert result.exit_code == 2
    assert "row 3, field 'Mã cơ quan'" in result.output and "row 3, field 'Mức độ hài lòng'" in result.output
    with runtime.sessions() as session:
        assert session.scalar(select(SurveyResponse).where(SurveyResponse.channel == "web")) is None
    bad.write_text(
        "Mã phiếu,Mã cơ quan,Thời gian đánh giá,Mức độ hài lòng\nW1,XD,01/03/2026,Hài lòng\n",
        encoding="utf-8",
    )
    ok = runner.invoke(cli.app, ["import-results", str(bad), "--channel", "web"])
    assert ok.exit_code == 0 and "nhập mới 1" in ok.output


def test_staff_phones_and_reverification(runtime: Runtime, tmp_path: Path) -> None:
    staff = tmp_path / "staff.csv"
    staff.write_text("Số điện thoại\n0905777888\n", encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(cli.app, ["staff-phones", "import", str(staff), "--agency", "XD"]).exit_code == 0
    drawn = runner.invoke(
        cli.app, ["reverify", "draw", "--agency", "XD", "--period", "2026-03", "--actor", "kt"]
    )
    assert drawn.exit_code == 0 and "10 of 12 answers" in drawn.output
    sample_id = drawn.output.split()[1].rstrip(":")
    out = tmp_path / "phuc-tra.csv"
    out.write_text("an older export\n")
    out.chmod(0o644)  # a file already there, readable by others: narrowed, then overwritten
    export = runner.invoke(
        cli.app, ["reverify", "export", "--sample", sample_id, "--actor", "kt", "--out", str(out)]
    )
    assert export.exit_code == 0, export.output
    assert len(out.read_text(encoding="utf-8-sig").strip().splitlines()) == 11
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    with runtime.sessions() as session:
        audit = session.scalar(select(AuditLog).where(AuditLog.action == "reverification.export"))
        assert audit is not None and audit.actor == f"cli:kt (os user {getpass.getuser()})"
        assert audit.role == "cli"  # not "verifier": no key vouches for the person at the shell
    assert runner.invoke(cli.app, ["detect-anomalies", "--period", "2026-03"]).exit_code == 0


def test_reverification_of_a_period_not_yet_ended_is_refused(runtime: Runtime) -> None:
    runner = CliRunner()
    early = runner.invoke(
        cli.app, ["reverify", "draw", "--agency", "XD", "--period", "2099-07", "--actor", "kt"]
    )
    assert early.exit_code == 2, early.output
    assert "2099-07 has not ended yet" in early.output
    with runtime.sessions() as session:
        assert session.scalar(select(ReverificationSample)) is None


_TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"


def _cp1258(text: str) -> bytes:
    """Text as Windows-1258 stores Vietnamese: the letter, then its tone as a combining mark."""
    out = b""
    for ch in text:
        parts = unicodedata.normalize("NFD", ch)
        tones = "".join(c for c in parts if c in _TONE_MARKS)
        letter = unicodedata.normalize("NFC", "".join(c for c in parts if c not in _TONE_MARKS))
        out += (letter + tones).encode("cp1258")
    return out


_RESULTS_HEADER = "Mã phiếu,Mã cơ quan,Thời gian đánh giá,Mức độ hài lòng\n"
_OLE_XLS = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)  # the start of an old .xls (OLE2) file


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("kq.csv", _cp1258(_RESULTS_HEADER + "W1,XD,01/03/2026,Hài lòng\n"), "Windows-1258"),
        ("kq.csv", (_RESULTS_HEADER + "W1,XD,01/03/2026,Hài lòng\n").encode("utf-16"), "UTF-16"),
        ("kq.csv", (_RESULTS_HEADER + "W1,XD,01/03/2026,Hài lòng\n").encode("utf-16-le"), "NUL bytes"),
        ("kq.xlsx", _OLE_XLS, "not a readable XLSX workbook"),
    ],
    ids=["cp1258", "utf-16", "utf-16-without-bom", "xls-renamed-xlsx"],
)
def test_import_results_refuses_unreadable_files_by_name(
    runtime: Runtime, tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = CliRunner().invoke(cli.app, ["import-results", str(path), "--channel", "web"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    flat = " ".join(result.output.split())
    assert f"field 'file': {name}:" in flat and expected in flat
    assert "CSV UTF-8" in flat  # what to save it as
    with runtime.sessions() as session:
        assert session.scalar(select(SurveyResponse).where(SurveyResponse.channel == "web")) is None


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("staff.csv", _cp1258("Họ tên,Số điện thoại\nCán bộ,0905777888\n"), "Windows-1258"),
        ("staff.csv", "Họ tên,Số điện thoại\nCán bộ,0905777888\n".encode("utf-16"), "UTF-16"),
        ("staff.xlsx", _OLE_XLS, "not a readable XLSX workbook"),
        ("staff.xls", _OLE_XLS, "old .xls workbooks are not supported"),
    ],
    ids=["cp1258", "utf-16", "xls-renamed-xlsx", "xls"],
)
def test_staff_phones_import_refuses_unreadable_files_by_name(
    runtime: Runtime, tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = CliRunner().invoke(cli.app, ["staff-phones", "import", str(path), "--agency", "XD"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    flat = " ".join(result.output.split())
    assert f"field 'file': {name}:" in flat and expected in flat
    with runtime.sessions() as session:
        assert session.scalar(select(StaffPhone)) is None


def test_staff_phones_import_knows_the_usual_phone_headers(runtime: Runtime, tmp_path: Path) -> None:
    staff = tmp_path / "staff.csv"
    staff.write_text("Họ tên,Số ĐT\nCán bộ,0905777888\n", encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["staff-phones", "import", str(staff), "--agency", "XD"])
    assert result.exit_code == 0, result.output
    assert "thêm 1 số" in result.output


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://sxd.danang.gov.vn:8O80/hook", "Invalid port: '8O80'"),  # letter O in the port
        ("https://sxd..danang.gov.vn/hook", "empty or over-long label"),
    ],
)
def test_subscribe_refuses_a_mistyped_webhook_url(runtime: Runtime, url: str, reason: str) -> None:
    result = CliRunner().invoke(cli.app, ["alerts", "subscribe", "--agency", "XD", "--webhook", url])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())  # the console may wrap long lines
    assert f"--webhook '{url}' is not a usable URL" in said and reason in said
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AlertSubscription)) == 0


def test_subscribe_accepts_a_good_webhook_url(runtime: Runtime) -> None:
    result = CliRunner().invoke(
        cli.app, ["alerts", "subscribe", "--agency", "XD", "--webhook", "https://sxd.danang.gov.vn:8443/hook"]
    )
    assert result.exit_code == 0, result.output
    with runtime.sessions() as session:
        assert session.scalar(select(AlertSubscription.target)) == "https://sxd.danang.gov.vn:8443/hook"


def test_a_bad_output_path_fails_before_anything_is_audited_or_written(
    runtime: Runtime, tmp_path: Path
) -> None:
    runner = WIDE_RUNNER  # one line per message, paths unwrapped
    drawn = runner.invoke(
        cli.app, ["reverify", "draw", "--agency", "XD", "--period", "2026-03", "--actor", "kt"]
    )
    sample_id = drawn.output.split()[1].rstrip(":")
    for out in (tmp_path / "no-such-folder" / "phuc-tra.csv", tmp_path):  # a missing folder, a folder
        export = runner.invoke(
            cli.app, ["reverify", "export", "--sample", sample_id, "--actor", "kt", "--out", str(out)]
        )
        assert export.exit_code == 2 and "Traceback" not in export.output, export.output
        assert f"cannot write {out}" in export.output
    with runtime.sessions() as session:  # no disclosure on record that did not happen
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 0
    # An unknown sample: refused, and no empty file left where the export would have gone.
    target = tmp_path / "phuc-tra.csv"
    unknown = runner.invoke(
        cli.app, ["reverify", "export", "--sample", "999999", "--actor", "kt", "--out", str(target)]
    )
    assert unknown.exit_code == 2 and not target.exists(), unknown.output

    # The report's --out: a file where a folder is expected.
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    from callcenter.cli.main import app as main_app  # ``report`` is a top-level command

    report = runner.invoke(main_app, ["report", "--period", "2026-03", "--out", str(a_file)])
    assert report.exit_code == 2 and "cannot write the report to" in report.output, report.output
    assert "Traceback" not in report.output


@pytest.mark.parametrize(
    "option", [["--burst-minutes", "0"], ["--burst-answers", "1"], ["--phone-answers", "-1"]]
)
def test_anomaly_thresholds_that_would_flag_every_answer_are_refused(
    runtime: Runtime, option: list[str]
) -> None:
    result = CliRunner().invoke(cli.app, ["detect-anomalies", "--period", "2026-03", *option])
    assert result.exit_code == 2 and option[0] in result.output, result.output
    with runtime.sessions() as session:  # flags are never withdrawn: none may be written
        assert session.scalar(select(func.count()).select_from(Anomaly)) == 0
