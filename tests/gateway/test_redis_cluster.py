"""The limiter on a Redis Cluster (proxy/gateway/redis_cluster.py, vocabulary.RedisKeys tags):
slots as Redis computes them, one slot per request, MOVED and ASK followed, a dead primary
failing only its own calls. The cluster is the session's local one (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from types import SimpleNamespace
from typing import Any, cast

import pytest
import redis

from localcluster.redis_cluster import RedisCluster
from proxy.gateway.pipeline import limits_for
from proxy.gateway.ratelimit import SCRIPT, Limiter, Rule, ScriptArgs
from proxy.gateway.redis_cluster import ClusterScriptConnection, crc16, key_slot
from proxy.gateway.redis_urls import parse
from proxy.gateway.vocabulary import CLUSTER_TAGS, RedisKeys
from tests.servers import cluster_url, free_port


# -- slots and tags: pure --------------------------------------------------------------------------
def test_crc16_and_slots_match_the_cluster_specification() -> None:
    # The check value of CRC-16/XMODEM, and slots from the Redis Cluster specification.
    assert crc16(b"123456789") == 0x31C3
    assert key_slot("foo") == 12182
    assert key_slot("bar") == 5061
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers") == key_slot("user1000")
    assert key_slot("foo{}{bar}") == crc16(b"foo{}{bar}") % 16384  # an empty tag: the whole key
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")  # up to the first }
    assert key_slot("foo{bar}{zap}") == key_slot("bar")  # the first tag only


def test_a_request_s_keys_share_one_slot() -> None:
    keys = RedisKeys("apigw:", cluster=True)
    rules = [Rule("plan:second", "r", "second", 10), Rule("plan:day", "q", "day", 100)]
    route_rules = [Rule("route:minute", "r", "minute", 5)]
    route = SimpleNamespace(id=7, name="r", policy=SimpleNamespace(rules=route_rules))
    for scope in ("key", "partner"):
        plan = SimpleNamespace(scope=scope, rules=rules)
        identity = SimpleNamespace(partner=SimpleNamespace(id=4242), key=SimpleNamespace(id=99), plan=plan, product="p")
        check = limits_for(keys, cast(Any, identity), cast(Any, route), "203.0.113.9", 1_800_000_000.0)
        touched = [*check.keys, keys.usage_key(check.tag)]
        assert len(touched) == 4 and len(set(touched)) == 4
        assert {key_slot(k) for k in touched} == {key_slot(keys.partner_tag(4242))}
    anonymous = limits_for(keys, None, cast(Any, route), "203.0.113.9", 1_800_000_000.0)
    assert {key_slot(k) for k in [*anonymous.keys, keys.usage_key(anonymous.tag)]} == {
        key_slot(keys.ip_tag("203.0.113.9"))
    }


def test_tags_follow_the_partner_and_vanish_on_a_single_redis() -> None:
    cluster, single = RedisKeys("apigw:", cluster=True), RedisKeys("apigw:")
    assert cluster.partner_tag(5) == cluster.partner_tag(5 + CLUSTER_TAGS) == "{s5}"
    assert cluster.rate(cluster.partner_tag(5), "k1", "p", "minute") == "apigw:{s5}w2:rl:k1:p:minute"
    assert single.rate(single.partner_tag(5), "k1", "p", "minute") == "apigw:w2:rl:k1:p:minute"  # no tag
    assert single.usage_keys() == ("apigw:usage",) and len(cluster.usage_keys()) == CLUSTER_TAGS
    assert cluster.ip_tag("2001:db8::1") == cluster.ip_tag("2001:db8::1") in cluster.tags
    # The 64 tags spread over the slots, so over the primaries (no two share a slot).
    assert len({key_slot(tag) for tag in cluster.tags}) == CLUSTER_TAGS
    with pytest.raises(ValueError, match="braces"):
        RedisKeys("apigw:{x}:", cluster=True)


def test_cluster_urls_parse_into_seeds_and_one_plain_url() -> None:
    target = parse("rediss+cluster://app:s3cret@10.0.0.1:7000,10.0.0.2:7001/?ssl_cert_reqs=none")
    assert target.cluster and target.seeds == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert target.url == "rediss://app:s3cret@10.0.0.1:7000?ssl_cert_reqs=none"
    assert not parse("redis://127.0.0.1:6379/3").cluster


# -- against the local cluster ---------------------------------------------------------------------
def node_client(cluster: RedisCluster, port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port)


def test_slots_agree_with_the_cluster(redis_cluster: RedisCluster) -> None:
    client = node_client(redis_cluster, redis_cluster.seeds[0][1])
    names = [f"apigw:{tag}usage" for tag in RedisKeys("apigw:", cluster=True).tags] + [f"k{i}" for i in range(50)]
    assert [client.cluster("KEYSLOT", name) for name in names] == [key_slot(name) for name in names]


def run(conn: ClusterScriptConnection, *calls: tuple[list[str], list[Any]]) -> list[Any]:
    """EVALSHA the limiter script for each (keys, args) once, through the lean cluster path."""
    sha = hashlib.sha1(SCRIPT.encode()).hexdigest()

    async def go() -> list[Any]:
        try:
            await conn.load_script(SCRIPT)
            return await conn.execute([("EVALSHA", sha, len(keys), *keys, *args) for keys, args in calls])
        finally:
            conn.close()  # connections belong to this event loop

    return asyncio.run(go())


def one_rate(tag: str, limit: int = 10) -> tuple[list[str], list[Any]]:
    """A call counting one request against a fresh per-minute limit under ``tag``."""
    name = uuid.uuid4().hex[:8]
    call = ScriptArgs(f"t:{tag}usage", 1_800_000_000_000, 1_800_000_000)
    call.check("", "", [call.rate_key(f"t:{tag}rl:{name}:minute", "minute"), limit])
    return call.keys, call.argv()


def primary_of(conn: ClusterScriptConnection, tag: str) -> tuple[str, int]:
    node = conn.slots[key_slot(tag)]
    assert node is not None
    return node


def test_calls_for_every_primary_go_out_in_one_batch(redis_cluster: RedisCluster) -> None:
    conn = ClusterScriptConnection(cluster_url(redis_cluster.seeds))
    tags = RedisKeys("t:", cluster=True).tags
    replies = run(conn, *(one_rate(tag) for tag in tags))
    assert replies == [[1, 1, 9, 60_000, 10]] * len(tags)
    assert len(conn.primaries) == 3 and conn.refreshes == 1
    conn.close()


def test_moved_is_followed_and_the_map_corrected(redis_cluster: RedisCluster) -> None:
    conn = ClusterScriptConnection(cluster_url(redis_cluster.seeds))
    run(conn, one_rate("{s1}"))
    owner = primary_of(conn, "{s1}")
    wrong = next(node for node in conn.primaries if node != owner)
    conn.slots[key_slot("{s1}")] = wrong  # as after a resharding this instance has not seen
    assert run(conn, one_rate("{s1}")) == [[1, 1, 9, 60_000, 10]]  # the wrong node said MOVED
    assert conn.slots[key_slot("{s1}")] == owner
    conn.close()


def test_ask_is_followed_while_a_slot_migrates(redis_cluster: RedisCluster) -> None:
    tag = "{ask-" + uuid.uuid4().hex[:6] + "}"  # a slot no other test uses
    conn = ClusterScriptConnection(cluster_url(redis_cluster.seeds))
    run(conn, one_rate("{s0}"))
    slot = key_slot(tag)
    source = primary_of(conn, tag)
    target = next(node for node in conn.primaries if node != source)
    src, dst = node_client(redis_cluster, source[1]), node_client(redis_cluster, target[1])
    src_id, dst_id = src.cluster("MYID"), dst.cluster("MYID")
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    try:
        # The key is not on the source: it answers ASK, the call runs on the importing node.
        usage_only = ([f"t:{tag}usage"], ScriptArgs(f"t:{tag}usage", 0, 0).argv([("1|1||1|p|req", 1)]))
        assert run(conn, usage_only) == [[]]  # no request in the call, only a usage delta
        assert conn.slots[slot] == source  # ASK changes nothing for later calls
        # A call with several keys in a migrating slot is refused by Redis (TRYAGAIN) until the
        # migration ends: the limiter's failure policy covers it (docs/operations.md).
        (refused,) = run(conn, one_rate(tag))
        assert isinstance(refused, redis.ResponseError) and str(refused).startswith("TRYAGAIN")
    finally:
        for client in (src, dst):  # finish the migration, as redis-cli --cluster reshard would
            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    assert dst.execute_command("HGET", f"t:{tag}usage", "1|1||1|p|req") == b"1"
    assert run(conn, one_rate(tag)) == [[1, 1, 9, 60_000, 10]]  # MOVED to the new owner
    assert conn.slots[slot] == target
    conn.close()


def test_a_dead_primary_fails_only_its_own_calls(redis_cluster: RedisCluster) -> None:
    conn = ClusterScriptConnection(cluster_url(redis_cluster.seeds))
    run(conn, one_rate("{s2}"))
    dead = ("127.0.0.1", free_port())  # nothing listens there
    conn.slots[key_slot("{s2}")] = dead
    healthy = next(tag for tag in RedisKeys("t:", cluster=True).tags if conn.slots[key_slot(tag)] != dead)
    first, second = run(conn, one_rate("{s2}"), one_rate(healthy))
    assert isinstance(first, redis.ConnectionError)
    assert second == [1, 1, 9, 60_000, 10]
    # The map is re-read on the next call and the slot served again.
    conn._refresh_after = 0.0
    assert run(conn, one_rate("{s2}")) == [[1, 1, 9, 60_000, 10]]
    conn.close()


def test_the_limiter_counts_each_tag_s_usage_in_its_own_hash(redis_cluster: RedisCluster) -> None:
    prefix = f"u{uuid.uuid4().hex[:6]}:"
    keys = RedisKeys(prefix, cluster=True)
    conn = ClusterScriptConnection(cluster_url(redis_cluster.seeds))
    limiter = Limiter(conn, keys)
    for partner in (1, 2):
        limiter._add(keys.partner_tag(partner), f"1|{partner}||1|p|2xx", 3)

    async def go() -> bool:
        return await limiter.flush()

    assert asyncio.run(go())
    client = redis_cluster.client()
    assert client.hgetall(keys.usage_key("{s1}")) == {b"1|1||1|p|2xx": b"3"}
    assert client.hgetall(keys.usage_key("{s2}")) == {b"1|2||1|p|2xx": b"3"}
    conn.close()
