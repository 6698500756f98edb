"""What the command line says when the environment is not ready: one short message, a distinct exit code.

A database that is down or not migrated, a Redis that does not answer, or a ``CALLCENTER_…`` variable
with a bad value are not bugs: the operator needs the cause and the next step, not 500 lines of
traceback. :func:`explain` recognises those failures (looking through ``raise … from`` causes and
tenacity's ``RetryError``); anything it does not recognise is left to the normal traceback. Every line
goes through :func:`~callcenter.core.pii.mask_digit_runs`, as the rest of the command line does.

Exit codes (documented in README "Using it"):

====  =====================================================================
0     done
1     the command failed or was refused (a state that does not allow it …)
2     invalid input: arguments, a file, an unknown code
3     invalid settings: a ``CALLCENTER_…`` variable (or ``.env``) is wrong or unsafe
4     the database cannot be reached (``CALLCENTER_DATABASE_URL``)
5     the database has no tables yet, or an older schema: run ``callcenter db upgrade``
6     Redis / the Celery broker cannot be reached (``CALLCENTER_REDIS_URL``, ``CALLCENTER_BROKER_URL``)
====  =====================================================================
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import kombu.exceptions
import pydantic
import redis.exceptions
import sqlalchemy.exc
import tenacity
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from callcenter.core import errors as core_errors
from callcenter.core.db import is_out_of_range, schema_is_current
from callcenter.core.pii import mask_digit_runs
from callcenter.core.settings import get_settings


class ExitCode(enum.IntEnum):
    """The ``callcenter`` command's exit codes; 1 and 2 are the ones the domain commands already use."""

    OK = 0
    FAILED = 1
    INVALID_INPUT = 2
    BAD_SETTINGS = 3
    DATABASE_UNREACHABLE = 4
    DATABASE_NOT_MIGRATED = 5
    REDIS_UNREACHABLE = 6


@dataclass(frozen=True)
class Problem:
    """What went wrong (first line) and what to do about it (the rest)."""

    code: ExitCode
    lines: tuple[str, ...]


# PostgreSQL SQLSTATEs of a schema that is missing or older than the code.
_UNDEFINED_TABLE, _UNDEFINED_COLUMN = "42P01", "42703"
_SQLITE_MISSING_SCHEMA = ("no such table", "no such column", "has no column named")
# PostgreSQL classes that mean "could not get a working connection": 08 connection exception,
# 28 invalid authorisation, 3D invalid catalogue (the database does not exist), 57P0x shutdown.
_PG_UNREACHABLE_PREFIXES = ("08", "28", "3D", "57P0")


def explain(exc: BaseException) -> Problem | None:
    """A short account of ``exc`` if it is a setup or environment problem, else ``None``."""
    chain = list(_causes(exc))
    for candidate in chain:
        problem = _environment_problem(candidate)
        if problem is not None:
            return problem
        if is_out_of_range(candidate):  # an id typed with too many digits: it names no row
            return Problem(
                ExitCode.INVALID_INPUT,
                # Not the limit itself: every line is masked, and 19 digits would come out as stars.
                ("số quá lớn / a number is out of range: an id has at most 19 digits",),
            )
    if isinstance(exc, core_errors.CallCenterError):
        code = ExitCode.INVALID_INPUT if isinstance(exc, core_errors.ValidationError) else ExitCode.FAILED
        return Problem(code, (str(exc),))
    return None


def render(problem: Problem) -> list[str]:
    """The lines to print (masked): ``Lỗi / error: …`` then the advice."""
    first, *rest = problem.lines
    lines = [
        f"Lỗi / error: {first}",
        *rest,
        f"(exit {int(problem.code)}; callcenter -v … shows the traceback)",
    ]
    return [mask_digit_runs(line) for line in lines]


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from, unwrapping tenacity's RetryError (a few levels at most)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        yield current
        if isinstance(current, tenacity.RetryError) and current.last_attempt.failed:
            current = current.last_attempt.exception()
        else:
            current = current.__cause__


def _environment_problem(exc: BaseException) -> Problem | None:
    if isinstance(exc, pydantic.ValidationError):
        return _settings_problem(exc)
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return _database_problem(exc)
    if isinstance(exc, sqlalchemy.exc.NoSuchModuleError | sqlalchemy.exc.ArgumentError) and (
        "URL" in str(exc) or isinstance(exc, sqlalchemy.exc.NoSuchModuleError)
    ):
        return Problem(
            ExitCode.BAD_SETTINGS,
            (
                f"CALLCENTER_DATABASE_URL không dùng được / is not usable: {_first_line(exc)}",
                "Ví dụ / e.g. postgresql+psycopg://user:password@host:5432/callcenter",
            ),
        )
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return Problem(
            ExitCode.REDIS_UNREACHABLE,
            (
                f"không kết nối được Redis / cannot reach Redis at {_redis_where()}: {_first_line(exc)}",
                "Kiểm tra Redis đang chạy và CALLCENTER_REDIS_URL / "
                "check that Redis is running and CALLCENTER_REDIS_URL.",
            ),
        )
    if isinstance(exc, kombu.exceptions.OperationalError):
        return Problem(
            ExitCode.REDIS_UNREACHABLE,
            (
                f"không kết nối được hàng đợi Celery / cannot reach the Celery broker: {_first_line(exc)}",
                "Kiểm tra Redis đang chạy và CALLCENTER_BROKER_URL (mặc định CALLCENTER_REDIS_URL) / "
                "check that Redis is running and CALLCENTER_BROKER_URL (default CALLCENTER_REDIS_URL).",
            ),
        )
    return None


def _settings_problem(exc: pydantic.ValidationError) -> Problem | None:
    settings_class = _settings_class(exc.title)
    if settings_class is None:  # a schema's validation, not a setting: not ours to explain
        return None
    lines = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        message = error["msg"].removeprefix("Value error, ")
        loc = error["loc"]
        if loc:
            where = _env_name(settings_class, str(loc[0])) + "".join(f"[{part}]" for part in loc[1:])
            lines.append(f"{where}: {message}")
        else:
            lines.append(message)
    return Problem(
        ExitCode.BAD_SETTINGS,
        (
            "cấu hình không hợp lệ / invalid settings: " + "; ".join(lines),
            "Sửa biến môi trường (hoặc tệp .env) rồi chạy lại / "
            "fix the environment variable (or .env) and run again; README.md, section Settings.",
        ),
    )


def _settings_class(title: str) -> type[BaseSettings] | None:
    pending: list[type[BaseSettings]] = [BaseSettings]
    while pending:
        cls = pending.pop()
        if cls.__name__ == title and cls is not BaseSettings:
            return cls
        pending.extend(cls.__subclasses__())
    return None


def _env_name(settings_class: type[BaseSettings], field_name: str) -> str:
    field: FieldInfo | None = settings_class.model_fields.get(field_name)
    alias = field.validation_alias if field is not None else None
    if isinstance(alias, pydantic.AliasChoices) and alias.choices:
        return str(alias.choices[0]).upper()
    if isinstance(alias, str):
        return alias.upper()
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    return (prefix + field_name).upper()


def _database_problem(exc: sqlalchemy.exc.DBAPIError) -> Problem | None:
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    detail = _first_line(exc.orig) if exc.orig is not None else _first_line(exc)
    if (
        sqlstate in (_UNDEFINED_TABLE, _UNDEFINED_COLUMN)
        or (
            isinstance(exc, sqlalchemy.exc.OperationalError)
            and any(marker in detail for marker in _SQLITE_MISSING_SCHEMA)
        )
    ) and not _schema_current():
        # A schema at head that lacks a table or column is no missing upgrade (a bug, or a table
        # dropped by hand): "run callcenter db upgrade" would mislead; the traceback is shown.
        return Problem(
            ExitCode.DATABASE_NOT_MIGRATED,
            (
                f"cơ sở dữ liệu chưa được tạo bảng hoặc chưa cập nhật / "
                f"the database schema is missing or out of date ({_database_where()}): {detail}",
                "Chạy / run: callcenter db upgrade",
            ),
        )
    connecting = exc.statement is None or exc.connection_invalidated
    if (
        isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError) and connecting
    ) or sqlstate.startswith(_PG_UNREACHABLE_PREFIXES):
        return Problem(
            ExitCode.DATABASE_UNREACHABLE,
            (
                f"không kết nối được cơ sở dữ liệu / cannot reach the database {_database_where()}: {detail}",
                "Kiểm tra máy chủ cơ sở dữ liệu đang chạy và CALLCENTER_DATABASE_URL / "
                "check that the database server is running and CALLCENTER_DATABASE_URL.",
            ),
        )
    return None


def _schema_current() -> bool:
    """Whether every migration is applied; False when that cannot be told (then the advice stands)."""
    try:
        return schema_is_current(get_settings().database_url)
    except Exception:  # the database or the settings fail again: keep the migration advice
        return False


def _database_where() -> str:
    try:
        return _without_password(get_settings().database_url)
    except pydantic.ValidationError:
        return "(CALLCENTER_DATABASE_URL)"


def _redis_where() -> str:
    try:
        return _without_password(get_settings().redis_url)
    except pydantic.ValidationError:
        return "(CALLCENTER_REDIS_URL)"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an error's text, short: drivers add hints and SQL below it."""
    for line in str(exc).splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= 240 else text[:237] + "…"
    return type(exc).__name__
