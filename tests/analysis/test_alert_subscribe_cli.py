"""`callcenter analysis alerts subscribe` refuses a webhook URL the HTTP client could not post to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from callcenter.analysis import cli
from callcenter.analysis.models import AlertSubscription
from callcenter.core.db import make_engine, make_session_factory, upgrade_database
from callcenter.core.pii import PiiCipher
from callcenter.core.runtime import Runtime
from callcenter.core.settings import Settings

from .conftest import Builder


@pytest.fixture
def runtime(tmp_path: Path, cipher: PiiCipher, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    url = f"sqlite:///{tmp_path / 'cc.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as session:
        Builder(session, cipher).agency("XD", "Sở Xây dựng")
        session.commit()
    rt = Runtime(
        settings=Settings(env="test", database_url=url), engine=engine, sessions=factory, cipher=cipher
    )
    monkeypatch.setattr(cli, "_runtime", lambda: rt)
    yield rt
    engine.dispose()


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
