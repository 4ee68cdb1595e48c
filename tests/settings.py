"""Test settings: the project's settings with a Redis namespace of the test run's own.

Set in the environment (not only here) so that gateway processes the tests start inherit them.
"""

from __future__ import annotations

import os
import uuid

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# The processes the tests start (manage.py checks, gateways) never read the var/dev.env that
# `make run` leaves in a developer's checkout: its DEBUG and SECRET_KEY made four production-
# settings tests fail after a `make run` (tests that want a dev.env name their own file).
os.environ["APIGW_DEV_ENV"] = ""
# Each pytest process (xdist workers included) takes a Redis namespace and a test database of
# its own; the gateway processes it starts (APIGW_TEST_CHILD=1) inherit its namespace.
if os.environ.get("APIGW_TEST_CHILD") != "1":
    os.environ["REDIS_PREFIX"] = f"apigw-test-{uuid.uuid4().hex[:8]}:"
    os.environ["APIGW_TEST_RUN"] = uuid.uuid4().hex[:8]
os.environ.setdefault("GATEWAY_CONFIG_POLL_SECONDS", "0.5")
os.environ.setdefault("LOG_LEVEL", "warning")

from apigw.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; tests only

# A test database of this run's own, so that runs side by side (several checkouts, a developer
# and CI on one machine) cannot drop each other's. Gateway processes started by the tests
# must see it too, so SQLite's is a file.
_run = os.environ["APIGW_TEST_RUN"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-db-{_run}.sqlite3")}  # noqa: F405
    (BASE_DIR / "var").mkdir(exist_ok=True)  # noqa: F405
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_apigw_{_run}"}  # noqa: F405
