"""Usage per key and per product over 24 h / 7 d / 30 d: chart, counts, quotas, CSV."""

from __future__ import annotations

import csv
from dataclasses import dataclass

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.text import slugify

from portal import charts, reports, selectors
from portal.access import member_view
from portal.forms import UsageFilterForm
from portal.models import PartnerMembership
from proxy.models import ApiKey, ApiProduct, UsageHourly


@dataclass(frozen=True, slots=True)
class Filters:
    range_name: str
    key: ApiKey | None
    product: str | None
    products: list[tuple[str, str]]  # (slug, name) the partner can filter by


def _filters(request: HttpRequest, member: PartnerMembership) -> Filters:
    """The query string, checked: another partner's key id or an unknown product is a 404."""
    partner = member.partner
    range_name = request.GET.get("range") or reports.DEFAULT_RANGE
    if range_name not in reports.RANGES:
        range_name = reports.DEFAULT_RANGE
    key = None
    raw_key = request.GET.get("key") or ""
    if raw_key:
        if not raw_key.isdigit():
            raise Http404("No such key.")
        key = selectors.key_get(partner, int(raw_key))
    slugs = set(selectors.partner_subscriptions(partner).values_list("product__slug", flat=True)) | set(
        UsageHourly.objects.filter(partner=partner).exclude(product="").values_list("product", flat=True).distinct()
    )
    names = dict(ApiProduct.objects.filter(slug__in=slugs).values_list("slug", "name"))
    products = sorted(((slug, names.get(slug, slug)) for slug in slugs), key=lambda item: item[1].lower())
    product = request.GET.get("product") or None
    if product is not None and product not in slugs:
        raise Http404("No such product.")
    return Filters(range_name, key, product, products)


@member_view()
def usage(request: HttpRequest, member: PartnerMembership) -> HttpResponse:
    filters = _filters(request, member)
    report = reports.usage_report(
        partner=member.partner, range_name=filters.range_name, key=filters.key, product=filters.product
    )
    labels = [b.start.strftime(report.range.tick_format) for b in report.buckets]
    chart = charts.bar_chart(
        labels,
        [
            charts.Series("requests", "bar-requests", [b.counts.requests for b in report.buckets]),
            charts.Series("errors and refusals", "bar-errors", [b.counts.errors for b in report.buckets]),
        ],
        title=f"Requests, {report.range.label.lower()}",
        description=f"{report.totals.requests} requests in {len(report.buckets)} intervals; "
        f"{report.totals.errors} were errors or refused.",
        chart_id="usage-chart",
    )
    form = UsageFilterForm(
        initial={
            "range": filters.range_name,
            "key": filters.key.pk if filters.key else "",
            "product": filters.product or "",
        },
        keys=list(selectors.partner_keys(member.partner)),
        products=filters.products,
        ranges=[(r.name, r.label) for r in reports.RANGES.values()],
    )
    context = {
        "member": member,
        "report": report,
        "chart": chart,
        "form": form,
        "filters": filters,
        "quotas": reports.quota_lines(partner=member.partner, key=filters.key, product=filters.product),
        "query": request.GET.urlencode(),
    }
    return render(request, "portal/usage/usage.html", context)


@member_view()
def usage_csv(request: HttpRequest, member: PartnerMembership) -> HttpResponse:
    filters = _filters(request, member)
    report = reports.usage_report(
        partner=member.partner, range_name=filters.range_name, key=filters.key, product=filters.product
    )
    name = "-".join(
        filter(
            None,
            [
                "usage",
                member.partner.slug,
                filters.key.prefix if filters.key else "",
                slugify(filters.product or ""),
                filters.range_name,
            ],
        )
    )
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "interval_start_utc",
            "requests",
            "status_2xx",
            "status_3xx",
            "status_4xx",
            "status_5xx",
            "status_429",
            "avg_latency_ms",
        ]
    )
    for bucket in report.buckets:
        c = bucket.counts
        latency = "" if c.avg_latency_ms is None else f"{c.avg_latency_ms:.1f}"
        writer.writerow(
            [
                bucket.start.isoformat(),
                c.requests,
                c.status_2xx,
                c.status_3xx,
                c.status_4xx,
                c.status_5xx,
                c.status_429,
                latency,
            ]
        )
    return response
