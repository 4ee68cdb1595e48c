"""Request, trace and span ids (proxy/gateway/ids.py)."""

from __future__ import annotations

import re

import pytest

from proxy.gateway import ids


@pytest.mark.parametrize("bits", [64, 128])
def test_ids_are_lower_case_hex_of_the_full_width(bits: int) -> None:
    values = {ids.random_hex(bits) for _ in range(200)}
    assert len(values) == 200
    assert all(re.fullmatch(f"[0-9a-f]{{{bits // 4}}}", v) for v in values)
    # Leading zero bits are kept as digits, not dropped: some ids start with "0".
    assert any(v.startswith("0") for v in {ids.random_hex(bits) for _ in range(400)})


def test_an_all_zero_draw_is_never_an_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_bits", lambda bits: 0)
    assert ids.random_hex(64) == "0" * 15 + "1"
    assert ids.random_hex(128) == "0" * 31 + "1"
