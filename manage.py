#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

Typed in a plain shell it finds the checkout's environment: it re-runs itself with ``.venv``'s
Python when Django is not importable here, and takes ``var/dev.env`` (written by ``make run``,
see apigw/devenv.py) as defaults unless DJANGO_SETTINGS_MODULE names other settings (tests). A bad setting
ends it with one line naming the variable (apigw/startup.py), never a traceback.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"


def _find_django() -> None:
    try:
        import django  # noqa: F401
    except ImportError:
        python = VENV / "bin" / "python"
        if python.exists() and Path(sys.prefix).resolve() != VENV.resolve() and not os.environ.get("APIGW_REEXEC"):
            os.environ["APIGW_REEXEC"] = "1"  # once: a broken .venv must not loop
            os.execv(python, [str(python), *sys.argv])
        sys.exit("manage.py: Django is not installed for this Python; run `make install` (creates .venv).")


def main() -> None:
    _find_django()
    if os.environ.get("DJANGO_SETTINGS_MODULE", "apigw.settings") == "apigw.settings":  # not tests.settings
        from apigw import devenv

        devenv.load()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apigw.settings")
    import django
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from apigw.startup import configured, refuse

    if sys.argv[1:2] != ["check"]:  # `check` lists every problem in Django's own format
        configured(django.setup)
    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        refuse(str(exc))


if __name__ == "__main__":
    main()
