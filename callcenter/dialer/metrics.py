"""Prometheus metrics of the dialer, served by the trunk owner (``--metrics-port``, default 9108).

Per process by design: the trunk owner places and follows every call of its servers, so its counters
are the dialer's. Capacity figures are read live from Redis at scrape time (they are shared by every
process), so they are right whichever owner is scraped.

* ``dialer_calls_in_flight{trunk,server}`` — calls this owner follows now;
* ``dialer_calls_placed_total{trunk,server}`` — originates sent (``rate()`` of it is the CPS);
* ``dialer_call_outcomes_total{outcome}`` — finished attempts by outcome;
* ``dialer_channels_leased{scope}`` / ``dialer_channels_limit{scope}`` — Redis leases vs limits;
* ``dialer_calls_last_second{scope}`` — permits taken in the last second (the CPS the pacer enforces).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import redis
from prometheus_client import REGISTRY, Counter, Gauge, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from callcenter.dialer.pacing import Pacer, Scope

IN_FLIGHT = Gauge("dialer_calls_in_flight", "Calls followed by this trunk owner now", ["trunk", "server"])
CALLS_PLACED = Counter("dialer_calls_placed", "Originates sent to the trunk", ["trunk", "server"])
OUTCOMES = Counter("dialer_call_outcomes", "Finished call attempts by outcome", ["outcome"])


class CapacityCollector(Collector):
    """Reads leases and the last second's permits from Redis on every scrape."""

    def __init__(self, client: redis.Redis, *, prefix: str, scopes: Sequence[Scope]) -> None:
        self.pacer = Pacer(client, prefix=prefix)
        self.scopes = list(scopes)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        leased = GaugeMetricFamily("dialer_channels_leased", "Channel leases held in Redis", labels=["scope"])
        limit = GaugeMetricFamily("dialer_channels_limit", "Channel limit per scope", labels=["scope"])
        last = GaugeMetricFamily(
            "dialer_calls_last_second", "Calls permitted in the last second", labels=["scope"]
        )
        try:
            usage = self.pacer.usage(self.scopes)
            recent = self.pacer.calls_in_last_second([s for s in self.scopes if s.cps is not None])
        except redis.RedisError:
            return
        for item in usage:
            leased.add_metric([item.scope], item.in_use)
            limit.add_metric([item.scope], item.limit)
        for name, count in recent.items():
            last.add_metric([name], count)
        yield leased
        yield limit
        yield last


def serve_metrics(port: int, collector: CapacityCollector | None = None) -> None:
    """Start the /metrics endpoint on ``port`` (0 = none) in a background thread."""
    if port <= 0:
        return
    if collector is not None:
        REGISTRY.register(collector)
    start_http_server(port)
