"""The OpenAPI document of the demo appliance API (demo/appliances.py), as partners see it through
the gateway: published with the demo product by ``manage.py loaddemo``. Paths are the gateway's
(the demo route forwards /api/v1 unchanged); the portal sets ``servers`` to the gateway's public
URL when it serves the document (portal/tryit.py). A test keeps it in step with the app's routes."""

from __future__ import annotations

from typing import Any

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "example": "washer-1"}
_ERROR = {"$ref": "#/components/responses/Error"}


def document() -> dict[str, Any]:
    appliance = {"$ref": "#/components/schemas/Appliance"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Appliance API",
            "version": "1.0.0",
            "description": "List the appliances of a home, start and stop their programs, follow their events. "
            "Send your API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"apiKeyHeader": []}],
        "tags": [{"name": "appliances"}, {"name": "programs"}, {"name": "events"}],
        "paths": {
            "/api/v1/appliances": {
                "get": {
                    "operationId": "listAppliances",
                    "summary": "List appliances",
                    "tags": ["appliances"],
                    "responses": {
                        "200": {
                            "description": "The appliances of the home.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"appliances": {"type": "array", "items": appliance}},
                                    }
                                }
                            },
                        },
                        "401": _ERROR,
                        "429": _ERROR,
                    },
                }
            },
            "/api/v1/appliances/{id}": {
                "get": {
                    "operationId": "getAppliance",
                    "summary": "Get one appliance",
                    "tags": ["appliances"],
                    "parameters": [_ID],
                    "responses": {
                        "200": {
                            "description": "The appliance.",
                            "content": {"application/json": {"schema": appliance}},
                        },
                        "404": _ERROR,
                    },
                }
            },
            "/api/v1/appliances/{id}/program": {
                "put": {
                    "operationId": "startProgram",
                    "summary": "Start a program",
                    "tags": ["programs"],
                    "parameters": [_ID],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["program"],
                                    "properties": {
                                        "program": {"type": "string", "example": "eco"},
                                        "temperature": {"type": "integer", "example": 40},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "Started.", "content": {"application/json": {"schema": appliance}}},
                        "400": _ERROR,
                        "404": _ERROR,
                    },
                },
                "delete": {
                    "operationId": "stopProgram",
                    "summary": "Stop the program",
                    "tags": ["programs"],
                    "parameters": [_ID],
                    "responses": {
                        "200": {"description": "Stopped.", "content": {"application/json": {"schema": appliance}}},
                        "404": _ERROR,
                    },
                },
            },
            "/api/v1/events": {
                "get": {
                    "operationId": "events",
                    "summary": "Appliance events (server-sent events; the stream stays open)",
                    "tags": ["events"],
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "description": "Close the stream after this many events.",
                            "schema": {"type": "integer", "minimum": 1},
                            "example": 3,
                        }
                    ],
                    "responses": {"200": {"description": "An event stream.", "content": {"text/event-stream": {}}}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Your API key."},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": {
                "Appliance": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "type": {"type": "string", "enum": ["washer", "dryer", "oven", "fridge"]},
                        "name": {"type": "string"},
                        "state": {"type": "string", "enum": ["idle", "running", "finished"]},
                        "program": {"type": "string", "nullable": True},
                        "temperature": {"type": "integer", "nullable": True},
                        "door": {"type": "string", "enum": ["open", "closed"]},
                        "remaining_seconds": {"type": "integer"},
                    },
                }
            },
            "responses": {
                "Error": {
                    "description": "An error.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "error": {
                                        "type": "object",
                                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                                    }
                                },
                            }
                        }
                    },
                }
            },
        },
    }
