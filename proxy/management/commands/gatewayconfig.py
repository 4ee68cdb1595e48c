"""The gateway configuration as a YAML file (docs/config.md).

    manage.py gatewayconfig export [FILE]                  write the configuration (stdout without FILE)
    manage.py gatewayconfig diff FILE [--prune] [--exit-code]
    manage.py gatewayconfig apply FILE [--dry-run] [--prune]
    manage.py gatewayconfig schema                         print the JSON Schema of the format

FILE may be ``-`` for stdin. ``apply`` prints the changes (``+`` create, ``~`` update, ``-``
delete) and makes them in one transaction; an invalid file is refused whole, with line numbers,
and nothing changes, with every mistake of the file reported in one run. ``diff --exit-code`` exits
2 when there are changes (for CI checks that the database matches Git): the answer to the question
asked, not an error, so it is not reported as a CommandError; errors exit 1.

``diff`` and ``apply`` report their progress on stderr (the phase and its counts, at most once a
second, and when a phase ends), so that a file of 10,000 routes does not look stuck; ``-v 0``
``--quiet`` or ``-v 0``
silences it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from audit.context import acting, cli_label
from proxy import declarative
from proxy.transactions import Busy


class Command(BaseCommand):
    help = "Export, diff and apply the gateway configuration as YAML."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="Write the configuration as YAML.")
        export.add_argument("file", nargs="?", default="-", help="Output file (default: stdout).")
        diff = sub.add_parser("diff", help="Show what applying FILE would change.")
        diff.add_argument("file")
        diff.add_argument("--prune", action="store_true", help="Include deletions of objects FILE leaves out.")
        diff.add_argument("--exit-code", action="store_true", help="Exit with 2 when there are changes.")
        diff.add_argument("-q", "--quiet", action="store_true", help="No progress on stderr (as -v 0).")
        apply = sub.add_parser("apply", help="Make the database match FILE, in one transaction.")
        apply.add_argument("file")
        apply.add_argument("--dry-run", action="store_true", help="Show the changes, make none.")
        apply.add_argument(
            "--prune", action="store_true", help="Delete objects of the file's sections that the file leaves out."
        )
        apply.add_argument("--user", default="", help="Record the changes in the audit log as this user's.")
        apply.add_argument("-q", "--quiet", action="store_true", help="No progress on stderr (as -v 0).")
        sub.add_parser("schema", help="Print the JSON Schema of the file format.")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action'].replace('-', '_')}")(options)

    def _read(self, name: str) -> str:
        if name == "-":
            return sys.stdin.read()
        try:
            return Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {name}: {exc}") from None

    def _export(self, options: dict[str, Any]) -> None:
        text = declarative.export_yaml()
        if options["file"] == "-":
            self.stdout.write(text, ending="")
        else:
            Path(options["file"]).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {options['file']}.")

    def _schema(self, options: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(declarative.schema(), indent=2))

    def _diff(self, options: dict[str, Any]) -> None:
        result = self._run(options, dry_run=True)
        if options["exit_code"] and result.changes:
            self.stdout.flush()
            sys.exit(2)  # the answer to the question asked, not a failure: no CommandError

    def _apply(self, options: dict[str, Any]) -> None:
        self._run(options, dry_run=options["dry_run"])

    def _run(self, options: dict[str, Any], *, dry_run: bool) -> declarative.Result:
        text = self._read(options["file"])
        quiet = options.get("quiet") or options["verbosity"] < 1
        user = None
        if options.get("user"):
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user {options['user']!r}.")
        try:
            with acting("cli", user=user, label=cli_label()):
                result = declarative.apply(
                    text,
                    prune=options["prune"],
                    dry_run=dry_run,
                    progress=declarative.quiet if quiet else _Progress(self.stderr),
                )
        except (DatabaseError, Busy) as exc:
            # Not the file's fault (the database is down, or kept losing races with other writes).
            raise CommandError(f"the database stopped the {options['action']}; nothing was changed: {exc}") from None
        except declarative.ConfigInvalid as exc:
            name = "<stdin>" if options["file"] == "-" else options["file"]
            for error in exc.errors:
                self.stderr.write(f"{name}:{error.line or 0}: {error.path + ': ' if error.path else ''}{error.message}")
            raise CommandError(f"{name} was refused ({len(exc.errors)} error(s)); nothing was changed.") from None
        self.stdout.write(result.text())
        return result


class _Progress:
    """Prints ``phase: done/total`` once a second while an apply runs, and when a large phase
    ends; a small file that applies within a second prints nothing."""

    INTERVAL = 1.0
    LARGE = 1000

    def __init__(self, out: Any) -> None:
        self.out = out
        self.started = self.last = time.monotonic()

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.INTERVAL or done >= total >= self.LARGE:
            self.last = now
            self.out.write(f"[{now - self.started:5.1f}s] {phase}: {done:,}/{total:,}")
