"""Prometheus metrics: capacity read live from Redis, served over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from callcenter.dialer import metrics
from callcenter.dialer.metrics import CapacityCollector
from callcenter.dialer.pacing import Pacer, Scope
from callcenter.dialer.testing import free_port

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_url: str, redis_prefix: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    for key in c.scan_iter(f"{redis_prefix}*"):
        c.delete(key)


def test_capacity_metrics_come_from_redis(client: redis.Redis, redis_prefix: str) -> None:
    glob = Scope("global", channels=300, cps=30)
    pbx = Scope("server:asterisk:pbx1", channels=120)
    pacer = Pacer(client, prefix=redis_prefix)
    for attempt_id in (1, 2, 3):
        assert pacer.acquire_channel(attempt_id=attempt_id, scopes=[glob, pbx], ttl_seconds=30) is None
        assert pacer.take_call_permit([glob]) == 0.0
    registry = CollectorRegistry()
    registry.register(CapacityCollector(client, prefix=redis_prefix, scopes=[glob, pbx]))
    text = generate_latest(registry).decode()
    assert 'dialer_channels_leased{scope="global"} 3.0' in text
    assert 'dialer_channels_leased{scope="server:asterisk:pbx1"} 3.0' in text
    assert 'dialer_channels_limit{scope="global"} 300.0' in text
    assert 'dialer_calls_last_second{scope="global"} 3.0' in text


def test_metrics_endpoint_serves_the_dialer_counters(client: redis.Redis, redis_prefix: str) -> None:
    metrics.OUTCOMES.labels("busy").inc()
    metrics.IN_FLIGHT.labels("simulator", "sim").set(2)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert 'dialer_call_outcomes_total{outcome="busy"}' in body
    assert 'dialer_calls_in_flight{server="sim",trunk="simulator"} 2.0' in body
