"""drf-spectacular hooks: the schema holds the admin API only, and documents the error answers
every operation can give (so clients, and schemathesis, know every status they may see)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

PREFIX = "/api/admin/v1/"

_ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
    "description": "What went wrong, for people.",
}
_INVALID = {
    "type": "object",
    "additionalProperties": True,
    "description": "Field name → list of messages (``non_field_errors`` for the object as a whole; "
    "``errors`` with line numbers for configuration files), or ``detail`` for a malformed request.",
}
_ANSWERS = {
    "400": ("Invalid input: the fields and what is wrong with each.", "ValidationError"),
    "401": ("No valid credentials: send a token (Authorization: Bearer gwadm_…) or log in.", "Error"),
    "403": ("Not allowed: not staff, or missing the Django permission this operation needs.", "Error"),
    "404": ("No such object (or page).", "Error"),
}


def admin_api_only(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list[tuple[str, str, str, Any]]:
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(PREFIX)]


def document_errors(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", _ERROR)
    schemas.setdefault("ValidationError", _INVALID)
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for code, (description, component) in _ANSWERS.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
                    },
                )
    return result


class AdminTokenScheme(OpenApiAuthenticationExtension):
    target_class = "adminapi.authentication.AdminTokenAuthentication"
    name = "adminToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "gwadm_<prefix>_<secret>",
            "description": "An admin API token (manage.py admintoken create, or Django admin).",
        }
