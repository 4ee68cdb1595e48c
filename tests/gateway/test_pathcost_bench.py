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


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two workers need two CPUs")
@pytest.mark.timeout(240)
def test_two_workers_run_at_once_each_on_its_own_cpu_with_shared_metrics(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[str, str | None]] = []
    real_popen = pathcost.subprocess.Popen

    def popen(args: list[str], **kwargs: object) -> object:
        if args[1:2] == ["-c"]:  # a worker (its Redis is started through Popen too)
            env = kwargs["env"]
            assert isinstance(env, dict)
            started.append((args[-1], env.get("PROMETHEUS_MULTIPROC_DIR")))
        return real_popen(args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(pathcost.subprocess, "Popen", popen)
    assert pathcost.main(["d", "--workers", "2", "--requests", "200", "--rounds", "1"]) == 0

    out = capsys.readouterr().out
    one = re.search(r"^\(d\) 1 worker\s+([\d.]+) µs", out, re.M)
    two = re.search(r"^\(d\) 2 workers\s+([\d.]+) µs.*median of (\d+) rounds", out, re.M)
    ratio = re.search(r"^\(d\) 2 workers / 1 worker: ([\d.]+)", out, re.M)
    assert one and two and ratio
    assert two.group(2) == "4"  # two runs of two workers, one round each
    assert float(ratio.group(1)) == pytest.approx(float(two.group(1)) / float(one.group(1)), abs=0.01)
    verdict = re.search(r"^target: CPU/request with 2 workers within 10 % of 1 worker, a core each: (.+)$", out, re.M)
    assert verdict and verdict.group(1) == ("met" if float(ratio.group(1)) <= 1.10 else "NOT MET")
    # Interleaved 1, 2, 1, 2 workers; a worker pinned to each CPU; several workers in
    # prometheus_client's multi-process mode, one worker not, as their servers would run.
    cpus = sorted(os.sched_getaffinity(0))
    assert [code.rsplit(", ", 1)[1].rstrip(")") for code, _ in started] == [str(c) for c in (cpus[0], *cpus[:2]) * 2]
    assert [directory is not None for _, directory in started] == [False, True, True] * 2
