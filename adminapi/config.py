"""Declarative configuration over the API (proxy/declarative, docs/config.md):

    GET  /api/admin/v1/config/export     the configuration as YAML (JSON-wrapped, or raw with Accept: application/yaml)
    POST /api/admin/v1/config/diff       what applying a file would change
    POST /api/admin/v1/config/apply      apply it (dry_run, prune as in the management command)
    GET  /api/admin/v1/config/schema     the JSON Schema of the file format

diff and apply take ``{"config": "<yaml>", "prune": false, "dry_run": false}``, or the YAML itself
with ``Content-Type: application/yaml`` and ``?prune=true&dry_run=true``.
"""

from __future__ import annotations

from typing import Any

import yaml
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import parsers, renderers, serializers
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response

from adminapi.base import AdminAPIView
from proxy import declarative

_MODELS = ("apiproduct", "plan", "upstream", "target", "route", "partner", "subscription")
VIEW_ALL = [f"proxy.view_{m}" for m in _MODELS]
CHANGE_ALL = [f"proxy.{action}_{m}" for m in _MODELS for action in ("view", "add", "change", "delete")]


class YAMLConfigParser(parsers.BaseParser):
    """A raw YAML body becomes ``{"config": text}``; options come from the query string."""

    media_type = "application/yaml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> dict[str, Any]:
        raw = stream.read(declarative.format.MAX_BYTES + 1) if stream is not None else b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("The YAML body must be UTF-8.") from None
        request = (parser_context or {}).get("request")
        options = request.query_params if request is not None else {}
        return {"config": text, **{k: options[k] for k in ("prune", "dry_run") if k in options}}


class YAMLTextParser(YAMLConfigParser):
    media_type = "text/yaml"


class YAMLConfigRenderer(renderers.BaseRenderer):
    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if isinstance(data, dict) and isinstance(data.get("config"), str):
            return data["config"].encode("utf-8")
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8")


class ConfigExportSerializer(serializers.Serializer):
    config = serializers.CharField(help_text="The configuration file (YAML).")


class ConfigInputSerializer(serializers.Serializer):
    config = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="A configuration file (YAML).")
    prune = serializers.BooleanField(default=False, help_text="Also delete what the file's sections leave out.")


class ConfigApplyInputSerializer(ConfigInputSerializer):
    dry_run = serializers.BooleanField(default=False, help_text="Report the changes, make none.")


class FieldChangeSerializer(serializers.Serializer):
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)


# inline_serializer: these field names (fields, create, update, delete, errors) are also
# attributes of DRF's Serializer class, so they cannot be declared as class attributes.
ConfigResultSerializer = inline_serializer(
    "ConfigResult",
    {
        "applied": serializers.BooleanField(help_text="False for diff and dry runs."),
        "summary": serializers.CharField(),
        "counts": inline_serializer(
            "ConfigCounts",
            {
                "create": serializers.IntegerField(),
                "update": serializers.IntegerField(),
                "delete": serializers.IntegerField(),
            },
        ),
        "changes": inline_serializer(
            "ConfigChange",
            many=True,
            fields={
                "action": serializers.ChoiceField(choices=["create", "update", "delete"]),
                "kind": serializers.ChoiceField(
                    choices=["product", "plan", "upstream", "target", "route", "partner", "subscription"]
                ),
                "name": serializers.CharField(),
                "note": serializers.CharField(allow_blank=True),
                "fields": serializers.DictField(child=FieldChangeSerializer(), help_text="Field → old and new value."),
            },
        ),
    },
)


class ConfigErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField(allow_null=True)
    path = serializers.CharField(allow_blank=True, help_text="Where in the file, e.g. routes[2].path.")
    message = serializers.CharField()


ConfigRefusedSerializer = inline_serializer("ConfigRefused", {"errors": ConfigErrorSerializer(many=True)})


_REFUSED = OpenApiResponse(
    ConfigRefusedSerializer,
    description="The file was refused whole (nothing changed), or the request itself is malformed.",
)


def _result(result: declarative.Result) -> dict[str, Any]:
    return {
        "applied": result.applied,
        "summary": result.summary(),
        "counts": result.counts(),
        "changes": [c.as_dict() for c in result.changes],
    }


class ConfigExportView(AdminAPIView):
    required_permissions = {"GET": VIEW_ALL}
    renderer_classes = [renderers.JSONRenderer, YAMLConfigRenderer]

    # Documented as JSON only; ``Accept: application/yaml`` (or ?format=yaml) gets the file itself
    # (docs/admin-api.md).
    @extend_schema(
        responses={(200, "application/json"): ConfigExportSerializer},
        parameters=[OpenApiParameter("format", exclude=True)],
    )
    def get(self, request: Request) -> Response:
        """The configuration as a YAML file (never secrets)."""
        return Response({"config": declarative.export_yaml()})


class ConfigSchemaView(AdminAPIView):
    required_permissions = {"GET": VIEW_ALL}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        """The JSON Schema of the configuration file."""
        return Response(declarative.schema())


class _ConfigWrite(AdminAPIView):
    parser_classes = (parsers.JSONParser, YAMLConfigParser, YAMLTextParser)
    write_lock = False  # declarative.apply takes the configuration lock itself, exclusively
    input_serializer: type[ConfigInputSerializer] = ConfigInputSerializer

    def run(self, request: Request, *, dry_run: bool | None = None) -> Response:
        """Every 400 of these endpoints has one shape, {"errors": [{line, path, message}]}."""
        try:
            params = self.input_serializer(data=request.data)
        except ParseError as exc:
            return _refused([declarative.ConfigError(None, "", str(exc.detail))])
        if not params.is_valid():
            return _refused(
                [
                    declarative.ConfigError(None, name, str(message))
                    for name, messages in params.errors.items()
                    for message in messages
                ]
            )
        options = params.validated_data
        try:
            result = declarative.apply(
                options["config"],
                prune=options["prune"],
                dry_run=options.get("dry_run", False) if dry_run is None else dry_run,
            )
        except declarative.ConfigInvalid as exc:
            return _refused(exc.errors)
        return Response(_result(result))


def _refused(errors: list[declarative.ConfigError]) -> Response:
    return Response({"errors": [e.as_dict() for e in errors]}, status=400)


class ConfigDiffView(_ConfigWrite):
    # A diff is an apply rolled back: it inserts, locks and waits like one. It therefore needs
    # the rights of an apply, so a view-only login cannot hold up writers (docs/admin-api.md);
    # read-only operators compare files against GET /config/export instead.
    required_permissions = {"POST": CHANGE_ALL}

    @extend_schema(
        request={"application/json": ConfigInputSerializer}, responses={200: ConfigResultSerializer, 400: _REFUSED}
    )
    def post(self, request: Request) -> Response:
        """What applying the file would change (an apply that is rolled back)."""
        return self.run(request, dry_run=True)


class ConfigApplyView(_ConfigWrite):
    required_permissions = {"POST": CHANGE_ALL}
    input_serializer = ConfigApplyInputSerializer

    @extend_schema(
        request={"application/json": ConfigApplyInputSerializer}, responses={200: ConfigResultSerializer, 400: _REFUSED}
    )
    def post(self, request: Request) -> Response:
        """Make the configuration match the file, in one transaction; changes reach the gateways
        within a second and are recorded in the audit log."""
        return self.run(request)
