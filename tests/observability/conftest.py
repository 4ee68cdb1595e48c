"""Helpers of the observability tests: gateway processes whose output the test reads, scrapes
parsed into samples, access-log lines parsed as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import subprocess_database_url
from tests.servers import Process, free_port, gateway_process

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base: str) -> Samples:
    response = httpx.get(base + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def log_lines(proc: Process) -> list[dict[str, Any]]:
    """Every JSON line the process wrote (uvicorn's own start-up lines before Django configures
    logging are plain text, and skipped)."""
    lines = []
    for line in proc.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def access_lines(proc: Process) -> list[dict[str, Any]]:
    return [line for line in log_lines(proc) if line.get("event", {}).get("dataset") == "apigw.access"]


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., tuple[str, Process]]]:
    """Start a gateway process on the test database; returns its base URL and the process."""
    started: list[Process] = []

    def start(workers: int = 1, **env: str) -> tuple[str, Process]:
        port = free_port()
        env = {"DATABASE_URL": subprocess_database_url(), "LOG_LEVEL": "info", "LOG_FORMAT": "json", **env}
        proc = gateway_process(port, env=env, workers=workers)
        started.append(proc.start())
        return f"http://127.0.0.1:{port}", proc

    yield start
    for proc in started:
        proc.stop()
