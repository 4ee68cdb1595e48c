"""Operate API keys from the shell.

    manage.py apikey create --partner SLUG --plan PLAN --name NAME [--products a,b] [--expires DAYS] [--create-partner]
    manage.py apikey revoke PREFIX_OR_KEY
    manage.py apikey list [--partner SLUG]

``create`` refuses an unknown partner slug (a typo would otherwise mint a key for a new partner
nobody knows about) unless ``--create-partner`` asks to make it (active); it subscribes it to the products
(every product when --products is left out) under the plan; the secret is the last stdout line.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from proxy import services
from proxy.models import ApiKey, ApiProduct, Partner, Plan


class Command(BaseCommand):
    help = "Create, revoke and list API keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key (prints the secret last).")
        create.add_argument("--partner", required=True, help="Partner slug.")
        create.add_argument(
            "--create-partner", action="store_true", help="Create the partner (active) if the slug is new."
        )
        create.add_argument("--plan", required=True, help="Plan slug for the subscriptions.")
        create.add_argument("--name", required=True)
        create.add_argument("--products", default="", help="Comma-separated product slugs (default: all).")
        create.add_argument("--expires", type=int, default=None, help="Days until the key expires.")
        revoke = sub.add_parser("revoke", help="Revoke a key by prefix or full key.")
        revoke.add_argument("key")
        listing = sub.add_parser("list", help="List keys.")
        listing.add_argument("--partner", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(options)

    @transaction.atomic
    def _create(self, options: dict[str, Any]) -> None:
        plan = Plan.objects.filter(slug=options["plan"]).first()
        if plan is None:
            known = ", ".join(Plan.objects.values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"Unknown plan {options['plan']!r} (known: {known}).")
        slugs = [s.strip() for s in options["products"].split(",") if s.strip()]
        products = list(ApiProduct.objects.filter(slug__in=slugs)) if slugs else list(ApiProduct.objects.all())
        missing = set(slugs) - {p.slug for p in products}
        if missing:
            raise CommandError(f"Unknown products: {', '.join(sorted(missing))}.")
        if not options["create_partner"] and not Partner.objects.filter(slug=options["partner"]).exists():
            raise CommandError(
                f"Unknown partner {options['partner']!r}. Check the slug (manage.py apikey list), "
                "or add --create-partner to create it."
            )
        partner = services.partner_get_or_create(slug=options["partner"])
        for product in products:
            services.subscription_set(partner=partner, product=product, plan=plan)
        expires = timezone.now() + timedelta(days=options["expires"]) if options["expires"] else None
        key, secret = services.api_key_create(
            partner=partner, name=options["name"], products=products if slugs else (), expires_at=expires
        )
        self.stdout.write(f"Created key {key.prefix} ({key.name}) for partner {partner.slug} on plan {plan.slug}.")
        self.stdout.write("The secret is shown once; store it now:")
        self.stdout.write(secret)

    def _revoke(self, options: dict[str, Any]) -> None:
        key = services.api_key_find(options["key"])
        if key is None:
            raise CommandError("No such key.")
        services.api_key_revoke(key=key)
        self.stdout.write(f"Revoked key {key.prefix} ({key.name}) of partner {key.partner.slug}.")

    def _list(self, options: dict[str, Any]) -> None:
        keys = ApiKey.objects.select_related("partner").order_by("partner__slug", "created")
        if options["partner"]:
            keys = keys.filter(partner__slug=options["partner"])
        for key in keys:
            last = key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "never"
            self.stdout.write(f"{key.prefix}  {key.partner.slug:20} {key.status:8} last used {last}  {key.name}")
