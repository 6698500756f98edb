"""The call attempt's state machine: the allowed transitions in one place, changed by compare-and-set.

Every status change is ``UPDATE call_attempts SET status = :new … WHERE id = :id AND status =
:expected``. Exactly one of several racing processes (a redelivered task, the reaper, the trunk
owner, a Twilio callback) sees one row changed; the others see zero and back off. Nothing else in
the code base writes ``call_attempts.status``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table, Update, bindparam, update
from sqlalchemy.orm import Session

from callcenter.core import driver
from callcenter.core.db import sql_constant
from callcenter.dialer.models import AttemptStatus, CallAttempt

S = AttemptStatus

TRANSITIONS: dict[AttemptStatus, frozenset[AttemptStatus]] = {
    # Released by the beat task; a place_call task is on its way.
    S.QUEUED: frozenset({S.CLAIMED, S.CANCELLED}),
    # A worker holds a channel lease; the trunk has not been asked yet, so cancelling is safe.
    S.CLAIMED: frozenset({S.DIALING, S.CANCELLED}),
    # Written *before* the originate leaves: from here on a call may exist, so it can only finish.
    S.DIALING: frozenset({S.RINGING, S.IN_SURVEY, S.FINISHED}),
    S.RINGING: frozenset({S.IN_SURVEY, S.FINISHED}),
    S.IN_SURVEY: frozenset({S.FINISHED}),
    S.FINISHED: frozenset(),
    S.CANCELLED: frozenset(),
}

FINAL_STATUSES = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
# Statuses in which a physical call may exist: the reaper must ask the trunk before ending them.
LIVE_STATUSES = frozenset({S.DIALING, S.RINGING, S.IN_SURVEY})
ACTIVE_STATUSES = frozenset(TRANSITIONS) - FINAL_STATUSES
# ACTIVE_STATUSES as SQL: what PostgreSQL finds through the small partial index ix_call_attempts_active
# (an index on the status would make every status change write into every index of the table).
IS_ACTIVE = CallAttempt.ended_at.is_(None)


class IllegalTransition(ValueError):
    """A transition the state machine does not allow (a programming error, not a lost race)."""


def check_transition(current: AttemptStatus, new: AttemptStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``current → new`` is in the table."""
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"call attempt cannot go from {current.value} to {new.value}")


def compare_and_set(
    session: Session | Connection,
    *,
    attempt_id: int,
    expected: AttemptStatus | frozenset[AttemptStatus],
    new: AttemptStatus,
    now: datetime,
    created_since: datetime | None = None,
    changed_since: datetime | None = None,
    **values: Any,
) -> bool:
    """Move one attempt from ``expected`` to ``new`` if nobody moved it first; True when this call won.

    ``expected`` may be a set (e.g. "any live status" for a hang-up that can arrive in DIALING,
    RINGING or IN_SURVEY). An age condition may be added: with ``created_since`` an attempt created
    earlier loses too (a claim that comes too late), with ``changed_since`` one whose last change
    (``updated_at``) is older (it sat in ``expected`` too long). Extra column values are written in
    the same statement. The statement is a Core UPDATE built once per shape (see
    :func:`_cas_statement`): no ORM work per call.
    """
    age_column, params = _cas_params(attempt_id, now, values, created_since, changed_since)
    stmt = _cas_statement(_as_set(expected), new, tuple(sorted(values)), age_column)
    connection = session if isinstance(session, Connection) else session.connection()
    return driver.execute(connection, stmt, params).rowcount == 1


def compare_and_set_returning(
    session: Session,
    *,
    attempt_id: int,
    expected: AttemptStatus | frozenset[AttemptStatus],
    new: AttemptStatus,
    now: datetime,
    returning: tuple[Any, ...],
    created_since: datetime | None = None,
    changed_since: datetime | None = None,
    **values: Any,
) -> Sequence[Any] | None:
    """:func:`compare_and_set` that also reads ``returning`` (as written) in the same statement.

    The row (its values in ``returning``'s order) when this call won, ``None`` when it lost.
    ``returning`` should be a module constant: the statement is built once per (shape, returning)
    pair.
    """
    age_column, params = _cas_params(attempt_id, now, values, created_since, changed_since)
    stmt = _cas_returning_statement(_as_set(expected), new, tuple(sorted(values)), age_column, returning)
    row: Sequence[Any] | None = driver.execute(session.connection(), stmt, params).one_or_none()
    return row


def compare_and_set_statement(
    *,
    attempt_id: int,
    expected: AttemptStatus | frozenset[AttemptStatus],
    new: AttemptStatus,
    now: datetime,
    **values: Any,
) -> tuple[Update, dict[str, Any]]:
    """:func:`compare_and_set` as a statement to run inside another one (``UPDATE … RETURNING id``,
    built once per shape) and its parameters: the dialer's finish runs it as the first CTE of the
    campaign's result (``campaign.service.record_attempt_result_if``), which it wins only if it
    returns a row."""
    _, params = _cas_params(attempt_id, now, values, None, None)
    stmt = _cas_returning_statement(_as_set(expected), new, tuple(sorted(values)), None, (_ATTEMPTS.c.id,))
    return stmt, params


def _as_set(expected: AttemptStatus | frozenset[AttemptStatus]) -> frozenset[AttemptStatus]:
    return expected if isinstance(expected, frozenset) else frozenset({expected})


def _cas_params(
    attempt_id: int,
    now: datetime,
    values: dict[str, Any],
    created_since: datetime | None,
    changed_since: datetime | None,
) -> tuple[str | None, dict[str, Any]]:
    """The statement's parameters, and the column of its age condition (None: no condition)."""
    params = {"cas_id": attempt_id, "cas_now": now, **{f"cas_{k}": v for k, v in values.items()}}
    if created_since is not None and changed_since is not None:
        raise ValueError("one age condition per compare-and-set")
    if created_since is not None:
        params["cas_since"] = created_since
        return "created_at", params
    if changed_since is not None:
        params["cas_since"] = changed_since
        return "updated_at", params
    return None, params


def _check_final_columns(new: AttemptStatus, columns: tuple[str, ...]) -> None:
    """``ended_at`` is written exactly when an attempt becomes final and ``outcome`` exactly when it
    finishes: the active attempts are found by ``ended_at IS NULL`` (the partial index
    ``ix_call_attempts_active``) and the summaries count finished attempts by their outcome."""
    final = new in FINAL_STATUSES
    if final != ("ended_at" in columns):
        raise ValueError(f"a change to {new.value} {'must' if final else 'must not'} write ended_at")
    finished = new is S.FINISHED
    if finished != ("outcome" in columns):
        raise ValueError(f"a change to {new.value} {'must' if finished else 'must not'} write outcome")


@lru_cache(maxsize=16)
def _cas_returning_statement(
    expected: frozenset[AttemptStatus],
    new: AttemptStatus,
    columns: tuple[str, ...],
    age_column: str | None,
    returning: tuple[Any, ...],
) -> Update:
    return _cas_statement(expected, new, columns, age_column).returning(*returning)


_ATTEMPTS: Table = CallAttempt.__table__  # type: ignore[assignment]


@lru_cache(maxsize=256)
def _cas_statement(
    expected: frozenset[AttemptStatus], new: AttemptStatus, columns: tuple[str, ...], age_column: str | None
) -> Update:
    """One Core UPDATE per (expected, new, columns, age condition), built once: the hot paths run it
    per call."""
    for current in expected:
        check_transition(current, new)
    _check_final_columns(new, columns)
    table = _ATTEMPTS
    statuses = sorted(s.value for s in expected)
    stmt = (
        update(table)
        # The statuses are written into the statement: nothing to expand at each execution.
        .where(table.c.id == bindparam("cas_id"), table.c.status.in_([sql_constant(s) for s in statuses]))
        .values(
            status=new.value,
            updated_at=bindparam("cas_now"),
            **{c: bindparam(f"cas_{c}") for c in columns},
        )
    )
    if age_column is not None:
        stmt = stmt.where(table.c[age_column] >= bindparam("cas_since"))
    return stmt
