"""Admin API tokens from the shell.

manage.py admintoken create --user NAME --name WHAT [--expires DAYS] [--superuser]   the token is the last stdout line
manage.py admintoken list [--user NAME]
manage.py admintoken delete PREFIX
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from adminapi import services
from adminapi.models import AdminToken
from audit.context import acting, cli_label


class Command(BaseCommand):
    help = "Create, list and delete admin API tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a token for a staff user (prints it last).")
        create.add_argument("--user", required=True, help="Username of a staff user.")
        create.add_argument("--name", required=True, help="What the token is for.")
        create.add_argument("--expires", type=int, default=None, help="Days until the token expires.")
        create.add_argument(
            "--superuser",
            action="store_true",
            help="Confirm that the token may act as a superuser (it can do anything).",
        )
        listing = sub.add_parser("list", help="List tokens.")
        listing.add_argument("--user", default=None)
        delete = sub.add_parser("delete", help="Delete (revoke) a token by its prefix.")
        delete.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        with acting("cli", label=cli_label()):
            getattr(self, f"_{options['action']}")(options)

    def _create(self, options: dict[str, Any]) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user {options['user']!r}.")
        if not (user.is_staff and user.is_active):
            raise CommandError(f"{user.get_username()} is not an active staff user; the API would refuse the token.")
        # The shell has the database anyway, so this is no security boundary; it stops a token that
        # can do everything from being minted by a slip of the --user argument.
        if user.is_superuser and not options["superuser"]:
            raise CommandError(
                f"{user.get_username()} is a superuser: add --superuser to mint a token that can do anything."
            )
        expires = timezone.now() + timedelta(days=options["expires"]) if options["expires"] else None
        token, secret = services.admin_token_create(user=user, name=options["name"], expires_at=expires)
        self.stdout.write(f"Created token {token.prefix} ({token.name}) for {user.get_username()}.")
        self.stdout.write("The token is shown once; store it now:")
        self.stdout.write(secret)

    def _list(self, options: dict[str, Any]) -> None:
        tokens = AdminToken.objects.select_related("user").order_by("user__username", "created")
        if options["user"]:
            tokens = tokens.filter(user__username=options["user"])
        for token in tokens:
            last = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
            state = "expired" if token.expired else "active"
            self.stdout.write(
                f"{token.prefix}  {token.user.get_username():20} {state:8} last used {last}  {token.name}"
            )

    def _delete(self, options: dict[str, Any]) -> None:
        token = AdminToken.objects.filter(prefix=options["prefix"]).first()
        if token is None:
            raise CommandError("No such token.")
        token.delete()
        self.stdout.write(f"Deleted token {token.prefix} ({token.name}).")
