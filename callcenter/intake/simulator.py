"""A stand-in for the province's one-stop system (Hệ thống một cửa điện tử): NOT the real system.

It serves synthetic dossiers (see :mod:`callcenter.intake.synthetic`) over HTTP with the same bearer
token auth, pagination and ``updated_since`` filter that :class:`OneStopApiClient` expects, so the
demo and the tests exercise the real connector end to end. Faults (429 with Retry-After, 5xx) can be
injected for the retry tests. Run it alone with ``scripts/onestop_simulator.py``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from callcenter.core.clock import VN_TZ
from callcenter.intake.mapping import MappingConfig
from callcenter.intake.normalise import DateFormatError, parse_datetime
from callcenter.intake.synthetic import to_api_json

STAND_IN_NOTICE = (
    "SIMULATOR: a stand-in for the province's one-stop system with synthetic, invented dossiers. "
    "It is not the real system and holds no real citizen's data."
)


class OneStopStore:
    """The simulator's dossiers in memory, ordered by (updated_at, code) as the API pages them."""

    def __init__(self, records: Iterable[Mapping[str, str]], *, mapping: MappingConfig) -> None:
        self.mapping = mapping
        self._lock = threading.Lock()
        self._by_code: dict[str, dict[str, str]] = {}
        self._order: list[tuple[datetime, str]] = []
        for record in records:
            self._by_code[record["code"]] = dict(record)
        self._reindex()

    def _reindex(self) -> None:
        self._order = sorted((parse_datetime(r["updated_at"]), code) for code, r in self._by_code.items())

    def __len__(self) -> int:
        return len(self._by_code)

    def upsert(self, record: Mapping[str, str]) -> None:
        """Add or replace a dossier (its ``updated_at`` decides where it sorts)."""
        with self._lock:
            self._by_code[record["code"]] = dict(record)
            self._reindex()

    def get(self, code: str) -> dict[str, str]:
        with self._lock:
            return dict(self._by_code[code])

    def mark_returned(self, code: str, *, when: datetime) -> None:
        """The agency hands the result back: return date, status and update time change."""
        record = self.get(code)
        stamp = when.astimezone(VN_TZ).isoformat(timespec="seconds")
        record.update(returned_at=stamp, status="Đã trả kết quả", updated_at=stamp)
        self.upsert(record)

    def page(
        self, *, updated_since: datetime | None, page: int, page_size: int
    ) -> tuple[list[Any], bool, int]:
        """Records with ``updated_at >= updated_since``, one page of them, whether more follow, total."""
        with self._lock:
            selected = [
                code for stamp, code in self._order if updated_since is None or stamp >= updated_since
            ]
            start = (page - 1) * page_size
            chunk = selected[start : start + page_size]
            items = [to_api_json(self._by_code[code], self.mapping) for code in chunk]
            return items, start + page_size < len(selected), len(selected)


@dataclass
class Faults:
    """Injected failures: the first ``rate_limited`` requests get 429, the next ``server_errors`` 5xx."""

    rate_limited: int = 0
    retry_after: str = "1"
    server_errors: int = 0
    server_status: int = 503
    delay_seconds: float = 0.0  # sleep before answering (to provoke client timeouts)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0

    def next_fault(self) -> tuple[int, dict[str, str]] | None:
        with self._lock:
            self.requests += 1
            n = self.requests
        if n <= self.rate_limited:
            return 429, {"Retry-After": self.retry_after}
        if n <= self.rate_limited + self.server_errors:
            return self.server_status, {}
        return None


def create_simulator_app(store: OneStopStore, *, token: str, faults: Faults | None = None) -> FastAPI:
    """The simulator's HTTP app: ``GET <api.path>`` with the mapping's parameter names."""
    envelope = store.mapping.api
    faults = faults or Faults()
    app = FastAPI(title="One-stop system SIMULATOR (stand-in)", description=STAND_IN_NOTICE)

    @app.get("/")
    def about() -> dict[str, str]:
        return {"notice": STAND_IN_NOTICE, "dossiers": envelope.path}

    @app.get(envelope.path)
    def dossiers(request: Request) -> JSONResponse:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return JSONResponse({"detail": "invalid or missing bearer token"}, status_code=401)
        fault = faults.next_fault()
        if faults.delay_seconds:
            time.sleep(faults.delay_seconds)
        if fault is not None:
            status, headers = fault
            return JSONResponse({"detail": "simulated fault"}, status_code=status, headers=headers)
        query = request.query_params
        try:
            page = int(query.get(envelope.page_param, envelope.first_page))
            page_size = int(query.get(envelope.page_size_param, 100))
        except ValueError as exc:
            raise HTTPException(400, "page and page_size must be integers") from exc
        if page < envelope.first_page or not 1 <= page_size <= 5000:
            raise HTTPException(400, "page or page_size out of range")
        since_raw = query.get(envelope.updated_since_param)
        try:
            since = parse_datetime(since_raw) if since_raw else None
        except DateFormatError as exc:
            raise HTTPException(400, f"{envelope.updated_since_param}: {exc}") from exc
        items, has_more, total = store.page(
            updated_since=since, page=page - envelope.first_page + 1, page_size=page_size
        )
        body = {
            envelope.items_key: items,
            envelope.has_more_key: has_more,
            "total": total,
            "page": page,
            "notice": STAND_IN_NOTICE,
        }
        return JSONResponse(body)

    app.state.faults = faults
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SimulatorServer:
    """Runs the simulator with uvicorn in a background thread (demo, tests); a context manager."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="onestop-simulator", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SimulatorServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the one-stop simulator did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
