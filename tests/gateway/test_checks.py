"""pipeline.Checks: a credential's Check on a route is built once an hour, and never outlives what
it was built from — the snapshot's partner, key, plan and route, the hour (usage fields) and the
UTC day and month (quota windows, which begin on the hour)."""

from __future__ import annotations

import calendar
from types import SimpleNamespace
from typing import Any, cast

from proxy.gateway.auth import Identity, Key, Partner, Plan
from proxy.gateway.pipeline import Checks, limits_for
from proxy.gateway.ratelimit import Rule
from proxy.gateway.vocabulary import RedisKeys

KEYS = RedisKeys("apigw-test:")
PLAN_RULES = (Rule("plan:minute", "r", "minute", 60), Rule("plan:day", "q", "day", 1000))
ROUTE_RULES = (Rule("route:second", "r", "second", 5),)
# 2027-03-31 23:59:59 UTC: one second before a new hour, day and month.
LAST_SECOND = calendar.timegm((2027, 3, 31, 23, 59, 59)) + 0.5


def _partner(partner_id: int = 7) -> Partner:
    return Partner(partner_id, f"p{partner_id}", "active", {"thermo": "gold"})


def _key(key_id: int = 11, partner_id: int = 7) -> Key:
    return Key(key_id, f"k{key_id}", "hash", partner_id, None, None)


def _route(route_id: int = 3, rules: tuple[Rule, ...] = ROUTE_RULES) -> Any:
    return SimpleNamespace(id=route_id, name=f"r{route_id}", policy=SimpleNamespace(rules=rules))


def _identity(partner: Partner, key: Key | None, plan: Plan | None, product: str = "thermo") -> Identity:
    # Built per request by the authenticator: a new Identity around the snapshot's own objects.
    return Identity(partner, key, plan, product, "key" if key else "jwt", f"key:{key.id}" if key else "jwt:x")


def test_a_credential_s_check_on_a_route_is_built_once_and_is_what_limits_for_builds() -> None:
    checks, snapshot = Checks(KEYS), object()
    partner, key, plan, route = _partner(), _key(), Plan("gold", "key", PLAN_RULES), _route()
    first = checks.get(cast(Any, snapshot), _identity(partner, key, plan), route, "198.51.100.1", 1_800_000_000.0)
    again = checks.get(cast(Any, snapshot), _identity(partner, key, plan), route, "198.51.100.2", 1_800_000_100.0)
    assert again is first
    assert first == limits_for(KEYS, _identity(partner, key, plan), route, "198.51.100.1", 1_800_000_000.0)
    assert len(first.keys) == 3 and first.last_used_field


def test_each_credential_route_and_product_has_its_own_check() -> None:
    checks, snapshot = Checks(KEYS), cast(Any, object())
    partner, plan, key, key2, route, route2 = (
        _partner(),
        Plan("gold", "key", PLAN_RULES),
        _key(11),
        _key(12),
        _route(),
        _route(4),
    )
    now = 1_800_000_000.0
    asked = {
        "one": (key, route, "thermo"),
        "other key": (key2, route, "thermo"),
        "other route": (key, route2, "thermo"),
        "other product": (key, route, "oven"),
        "a JWT (no key)": (None, route, "thermo"),
    }
    built = {
        name: checks.get(snapshot, _identity(partner, k, plan, p), r, "", now) for name, (k, r, p) in asked.items()
    }
    one = built["one"]
    assert one.keys != built["other key"].keys and one.last_used_field != built["other key"].last_used_field
    assert one.keys[-1] != built["other route"].keys[-1] and one.usage_prefix != built["other route"].usage_prefix
    assert one.keys[0] != built["other product"].keys[0] and one.usage_prefix != built["other product"].usage_prefix
    assert built["a JWT (no key)"].last_used_field == "" and built["a JWT (no key)"].keys[0] != one.keys[0]
    # Each is kept: asked again (new Identity objects, as per request), each comes back as built.
    for name, (k, r, p) in asked.items():
        assert checks.get(snapshot, _identity(partner, k, plan, p), r, "", now + 60) is built[name], name


def test_a_new_hour_day_and_month_give_new_usage_fields_and_quota_windows() -> None:
    checks, snapshot = Checks(KEYS), cast(Any, object())
    partner, key, plan, route = _partner(), _key(), Plan("gold", "key", PLAN_RULES), _route()
    before = checks.get(snapshot, _identity(partner, key, plan), route, "198.51.100.1", LAST_SECOND)
    after = checks.get(snapshot, _identity(partner, key, plan), route, "198.51.100.1", LAST_SECOND + 1)
    assert after == limits_for(KEYS, _identity(partner, key, plan), route, "198.51.100.1", LAST_SECOND + 1)
    assert before.usage_prefix.split("|")[0] != after.usage_prefix.split("|")[0]  # the hour
    quota_before, quota_after = before.keys[1], after.keys[1]
    assert quota_before.endswith(":day:20270331") and quota_after.endswith(":day:20270401")
    assert before.ends is not None and after.ends is not None
    assert after.ends[quota_after] == before.ends[quota_before] + 86_400_000
    # A clock stepped back into the earlier hour is that hour's again, not the later one's.
    back = checks.get(snapshot, _identity(partner, key, plan), route, "198.51.100.1", LAST_SECOND - 10)
    assert back.keys[1] == quota_before and back.usage_prefix == before.usage_prefix


def test_a_new_snapshot_empties_the_table() -> None:
    checks = Checks(KEYS)
    partner, key, plan, route = _partner(), _key(), Plan("gold", "key", PLAN_RULES), _route()
    old = checks.get(cast(Any, object()), _identity(partner, key, plan), route, "", 1_800_000_000.0)
    checks.get(cast(Any, object()), _identity(partner, _key(12), plan), route, "", 1_800_000_000.0)
    assert len(checks._table) == 1  # the old snapshot's entries (and objects) are let go
    # Even where the objects are the very same ones, the check is built anew.
    snapshot = cast(Any, object())
    assert checks.get(snapshot, _identity(partner, key, plan), route, "", 1_800_000_001.0) is not old


def test_a_plan_swapped_within_one_snapshot_is_not_mistaken_for_the_old_one() -> None:
    checks, snapshot = Checks(KEYS), cast(Any, object())
    partner, key, route = _partner(), _key(), _route()
    gold, silver = Plan("gold", "key", PLAN_RULES), Plan("silver", "partner", (Rule("plan:hour", "r", "hour", 9),))
    checks.get(snapshot, _identity(partner, key, gold), route, "", 1_800_000_000.0)
    check = checks.get(snapshot, _identity(partner, key, silver), route, "", 1_800_000_000.0)
    assert [r.name for r in check.rules] == ["plan:hour", "route:second"]
    # An entry whose ids match but whose objects are others (an id reused after its object died):
    # compared, never served.
    table = checks._table
    entry_key = next(k for k, (_, owners) in table.items() if owners[2] is silver)
    stale = limits_for(KEYS, _identity(_partner(8), _key(19, 8), gold), _route(9), "", 1_800_000_000.0)
    table[entry_key] = (stale, (_partner(8), _key(19, 8), gold, _route(9)))
    assert checks.get(snapshot, _identity(partner, key, silver), route, "", 1_800_000_000.0) == check


def test_anonymous_callers_are_not_kept_and_the_table_is_bounded() -> None:
    checks, snapshot = Checks(KEYS), cast(Any, object())
    route = _route()
    first = checks.get(snapshot, None, route, "198.51.100.1", 1_800_000_000.0)
    second = checks.get(snapshot, None, route, "198.51.100.2", 1_800_000_000.0)
    assert first.keys != second.keys and not checks._table  # each address its own keys, none kept
    checks.MAX_ENTRIES = 3
    partner, plan = _partner(), Plan("gold", "key", PLAN_RULES)
    for key_id in range(10):
        checks.get(snapshot, _identity(partner, _key(key_id), plan), route, "", 1_800_000_000.0)
        assert len(checks._table) <= 3
