"""The one-stop system's REST API: bearer token, pages, incremental sync by ``updated_since``.

Transient failures (timeouts, connection errors, 5xx, 429) are retried with tenacity; a 429's
``Retry-After`` is honoured (up to a cap). A refused token (401/403) fails at once with a message
that says which setting to fix. Field names and the envelope come from the mapping file.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from callcenter.intake.adapters.base import SourceRow
from callcenter.intake.errors import ApiAuthError, ApiError, ApiUnavailable
from callcenter.intake.mapping import MappingConfig, api_paths, extract_api_record
from callcenter.intake.normalise import FieldError

log = logging.getLogger(__name__)


class _Retryable(Exception):
    """A response worth asking again for; ``retry_after`` is the server's wish, if it said one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Page:
    items: list[Mapping[str, Any]]
    has_more: bool


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class OneStopApiClient:
    """Reads dossiers page by page from the one-stop API. Build one per sync; close it after."""

    kind = "api"

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        mapping: MappingConfig,
        page_size: int = 500,
        timeout: float = 30.0,
        max_attempts: int = 5,
        max_retry_after: float = 120.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token:
            raise ApiAuthError("no API token configured: set CALLCENTER_INTAKE_API_TOKEN")
        self._envelope = mapping.api
        self._paths = api_paths(mapping)
        self.location = base_url.rstrip("/") + self._envelope.path
        self._page_size = page_size
        self._max_attempts = max_attempts
        self._max_retry_after = max_retry_after
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        self.updated_since: datetime | None = None
        self.requests = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OneStopApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _Retryable) and error.retry_after is not None:
            return min(error.retry_after, self._max_retry_after)
        return float(min(self._backoff_max, self._backoff_base * 2 ** (state.attempt_number - 1)))

    def fetch_page(self, *, page: int, updated_since: datetime | None) -> Page:
        """One page of records, retried on transient failures."""
        params: dict[str, Any] = {
            self._envelope.page_param: page,
            self._envelope.page_size_param: self._page_size,
        }
        if updated_since is not None:
            params[self._envelope.updated_since_param] = updated_since.astimezone(UTC).isoformat()
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type((_Retryable, httpx.TimeoutException, httpx.TransportError)),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._get_page, params)
        except (_Retryable, httpx.TimeoutException, httpx.TransportError) as exc:
            raise ApiUnavailable(
                f"one-stop API {self.location} page {page}: still failing after "
                f"{self._max_attempts} attempts ({exc or type(exc).__name__})"
            ) from exc

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning("one-stop API attempt %d failed (%s); retrying", state.attempt_number, error)

    def _get_page(self, params: dict[str, Any]) -> Page:
        self.requests += 1
        response = self._http.get(self._envelope.path, params=params)
        status = response.status_code
        if status in (401, 403):
            raise ApiAuthError(
                f"one-stop API refused the token (HTTP {status}) at {self.location}: "
                "check CALLCENTER_INTAKE_API_TOKEN"
            )
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After")))
        if status >= 400:
            raise ApiError(f"one-stop API {self.location} answered HTTP {status}: {response.text[:200]}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(f"one-stop API {self.location} returned a body that is not JSON") from exc
        items = body.get(self._envelope.items_key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ApiError(
                f"one-stop API {self.location}: the answer has no '{self._envelope.items_key}' list "
                "(check the mapping's api.items_key)"
            )
        has_more = bool(body.get(self._envelope.has_more_key)) and bool(items)
        return Page(items=items, has_more=has_more)

    def rows(self) -> Iterator[SourceRow]:
        """Every record updated since :attr:`updated_since`, page after page."""
        page = self._envelope.first_page
        index = 0
        while True:
            result = self.fetch_page(page=page, updated_since=self.updated_since)
            for item in result.items:
                index += 1
                if not isinstance(item, Mapping):
                    problem = FieldError("record", "API item is not a JSON object")
                    yield SourceRow(f"page {page} item {index}", (), item, problem)
                    continue
                values = extract_api_record(item, self._paths)
                code = values[0]  # TARGET_FIELDS starts with the dossier code
                ref = f"id {code}" if code not in (None, "") else f"page {page} item {index}"
                yield SourceRow(ref, values, dict(item))
            if not result.has_more:
                return
            page += 1

    def raw_record(self, raw: Any) -> Any:
        return raw
