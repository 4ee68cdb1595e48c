"""bench/pathcost.py runs the real server protocol and apps on in-memory transports: every
request it counts was answered with the upstream's body (the harness waits for it, so a gateway
that refused or broke the requests would fail the run), and the figures it prints come from it."""

from __future__ import annotations

import os
import re

import pytest

from bench import pathcost


@pytest.mark.timeout(240)
def test_a_small_run_answers_every_request_of_each_app(capsys: pytest.CaptureFixture[str]) -> None:
    environment = dict(os.environ)
    assert pathcost.main(["c2", "d", "e", "--requests", "300", "--rounds", "2"]) == 0
    # Its Redis and upstream are its children's business: later tests keep their REDIS_URL.
    assert dict(os.environ) == environment

    out = capsys.readouterr().out
    figures = {
        key: float(value) for key, value in re.findall(r"^\((\w+)\)\s+([\d.]+) µs of CPU per request", out, re.M)
    }
    assert set(figures) == {"c2", "d", "e"}
    # The gateway does more than the bare passthrough, and the full path more than a public route.
    assert 0 < figures["c2"] < figures["d"] < figures["e"]
    assert "(c2)/(d):" in out


def test_an_unknown_app_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        pathcost.main(["x"])
    assert "choose from c2, d, e" in capsys.readouterr().err
