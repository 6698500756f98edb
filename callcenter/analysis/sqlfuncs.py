"""Dialect-specific SQL for time buckets in the province's local time, identical on SQLite and PostgreSQL.

PostgreSQL converts with the real zone (``AT TIME ZONE 'Asia/Ho_Chi_Minh'``). SQLite has no zone
database, so it adds seven hours: Viet Nam has kept UTC+7 without daylight saving since 1975, which a
test checks against ``zoneinfo`` for every month of the reporting range.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

VN_ZONE_NAME = "Asia/Ho_Chi_Minh"
VN_OFFSET_HOURS = 7


class local_month(FunctionElement[str]):
    """``YYYY-MM`` of a UTC timestamp column in Asia/Ho_Chi_Minh."""

    type = String()
    inherit_cache = True
    name = "local_month"


@compiles(local_month, "postgresql")
def _local_month_pg(element: local_month, compiler: Any, **kw: Any) -> str:
    (arg,) = list(element.clauses)
    return f"to_char(({compiler.process(arg, **kw)} AT TIME ZONE '{VN_ZONE_NAME}'), 'YYYY-MM')"


@compiles(local_month, "sqlite")
def _local_month_sqlite(element: local_month, compiler: Any, **kw: Any) -> str:
    (arg,) = list(element.clauses)
    return f"strftime('%Y-%m', {compiler.process(arg, **kw)}, '+{VN_OFFSET_HOURS} hours')"


class epoch_seconds(FunctionElement[int]):
    """Whole seconds since 1970-01-01 UTC of a timestamp column (for fixed-width time windows)."""

    type = Integer()
    inherit_cache = True
    name = "epoch_seconds"


@compiles(epoch_seconds, "postgresql")
def _epoch_pg(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    (arg,) = list(element.clauses)
    return f"CAST(floor(extract(epoch FROM {compiler.process(arg, **kw)})) AS BIGINT)"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    (arg,) = list(element.clauses)
    return f"CAST(strftime('%s', {compiler.process(arg, **kw)}) AS INTEGER)"


def month_bucket(column: Any) -> local_month:
    return local_month(column)


def epoch_bucket(column: Any) -> epoch_seconds:
    return epoch_seconds(column)
