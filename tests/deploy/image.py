"""What the deployment files must agree with: the image (Dockerfile), the variables the code
reads (the table in docs/operations.md, parsed by tests/apigw/test_operations_doc.py) and the
platform's own start-up checks (apigw/startup.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from tests.apigw.test_operations_doc import documented, read_in_code
from tests.conftest import subprocess_database_url
from tests.servers import ROOT, Process, free_port, gateway_process

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def image_user() -> tuple[int, int]:
    """The runtime stage's ``USER uid:gid`` (numeric, so runAsNonRoot can check it)."""
    uid, gid = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE, flags=re.MULTILINE)[-1]
    return int(uid), int(gid)


def image_port() -> int:
    return int(re.findall(r"^EXPOSE (\d+)$", DOCKERFILE, flags=re.MULTILINE)[-1])


def image_default_port() -> int:
    return int(re.findall(r"\bPORT=(\d+)", DOCKERFILE)[0])


def unknown_variables(names: set[str]) -> set[str]:
    """Names a manifest sets that the platform does not read or the operations doc lacks:
    a typo there is silently ignored by the container, so it must fail here."""
    return names - (documented() & set(read_in_code()))


def startup_check(environment: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m apigw.startup`` (what the image runs before uvicorn) with exactly this
    environment, as a container would have it: settings parsed, the project's checks run."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DJANGO_SETTINGS_MODULE": "apigw.settings"}
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-m", "apigw.startup"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@contextmanager
def gateway_with(environment: Mapping[str, str]) -> Iterator[Process]:
    """A real gateway process with a manifest's environment; only the stores (database, Redis)
    are the test's own. Needs the test database (``django_db(transaction=True)``)."""
    env = {**environment, "DATABASE_URL": subprocess_database_url(), "REDIS_URL": os.environ["REDIS_URL"]}
    proc = gateway_process(free_port(), env=env).start()
    try:
        yield proc
    finally:
        proc.stop()
