"""The demo API's OpenAPI document (published with the demo product) describes the app's routes."""

from __future__ import annotations

from demo.appliances import create_app
from demo.openapi import document


def test_every_documented_operation_is_a_route_of_the_demo_app() -> None:
    app = create_app()
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    documented = {(method.upper(), path) for path, ops in document()["paths"].items() for method in ops}
    assert documented <= routes, documented - routes
    assert ("GET", "/api/v1/appliances") in documented
