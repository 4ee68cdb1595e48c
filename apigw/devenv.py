"""The development environment of this checkout, in one file: ``var/dev.env``.

``make run`` writes it (``python -m apigw.devenv``) from its own environment: DEBUG, SECRET_KEY,
DATABASE_URL, REDIS_URL, REDIS_PREFIX. ``manage.py`` reads it unless the environment names other
settings than ``apigw.settings`` (the tests' ``tests.settings``), so ``python manage.py apikey
revoke …`` typed in a plain shell talks to the same database and the same Redis namespace as the
running platform (a revocation reaches the gateway at once instead of at its next full reload).
Variables set in the environment win over the file. Production never has the file: ``var/`` is
git- and docker-ignored.

No Django here: manage.py reads the file before Django is imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Another file (tests, a second `make run` beside the first); empty: none.
PATH = Path(os.environ.get("APIGW_DEV_ENV", str(ROOT / "var" / "dev.env")))
NAMES = ("DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "REDIS_PREFIX")


def defaults() -> dict[str, str]:
    """What settings.py would choose in DEBUG, written out so every process agrees on it."""
    return {
        "DEBUG": "true",
        # The same key settings.py derives in DEBUG: sessions and demo keys survive the switch.
        "SECRET_KEY": "insecure-dev-key-" + str(ROOT),
        "DATABASE_URL": f"sqlite:///{ROOT / 'db.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "REDIS_PREFIX": "apigw:",
    }


def read(path: Path = PATH) -> dict[str, str]:
    values: dict[str, str] = {}
    if not str(path) or path == Path():
        return values
    try:
        text = path.read_text()
    except FileNotFoundError:
        return values
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def load(path: Path = PATH) -> None:
    """The file's values as defaults of this process's environment."""
    for name, value in read(path).items():
        os.environ.setdefault(name, value)


def write(path: Path = PATH) -> dict[str, str]:
    """The file from this process's environment over the defaults."""
    values = {name: os.environ.get(name) or default for name, default in defaults().items()}
    if path == Path():
        return values
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `make run` (apigw/devenv.py); read by manage.py. Development only."]
    lines += [f"{name}={values[name]}" for name in NAMES]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return values


if __name__ == "__main__":
    write()
    print(f"development environment: {PATH}", file=sys.stderr)
