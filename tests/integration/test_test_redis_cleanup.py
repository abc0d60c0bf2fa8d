"""The test suite's own Redis manners: a test that ran a Dramatiq worker on a Redis broker
leaves no key behind in the developer's Redis (REMARKET_TEST_REDIS_URL)."""

from __future__ import annotations

import uuid

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from tests.conftest import close_redis_broker, delete_keys

pytestmark = pytest.mark.integration


def test_a_broker_a_worker_consumed_from_is_closed_without_a_key_left(redis_url: str) -> None:
    namespace = f"remarket-test-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(url=redis_url, namespace=namespace)
    client = redis.Redis.from_url(redis_url)
    done: list[int] = []

    @dramatiq.actor(broker=broker, queue_name="cleanup")
    def note(n: int) -> None:
        done.append(n)

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        note.send(1)
        broker.join("cleanup", timeout=10_000)
        worker.join()
    finally:
        worker.stop()
    assert done == [1]
    try:
        broker.flush_all()
        # What the suite's fixtures used to stop at: the worker's heartbeat set stays.
        assert client.exists(f"{namespace}:__heartbeats__")
        close_redis_broker(broker, redis_url)
        assert list(client.scan_iter(match=f"{namespace}*")) == []
    finally:
        delete_keys(redis_url, namespace)
        client.close()


def test_delete_keys_removes_only_the_prefix_it_is_given(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    mine, other = f"remarket-test:{uuid.uuid4().hex[:8]}:", f"remarket-test:{uuid.uuid4().hex}:"
    try:
        client.set(mine + "a", 1)
        client.set(mine + "b", 2)
        client.set(other + "a", 3)
        assert delete_keys(redis_url, mine) == 2
        assert client.get(mine + "a") is None and client.get(other + "a") == b"3"
    finally:
        client.delete(other + "a")
        client.close()
