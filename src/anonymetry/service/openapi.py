"""The collector's OpenAPI 3.1 document (hand-written, checked by schemathesis in the tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anonymetry.ingest.batch import MAX_EVENTS

if TYPE_CHECKING:
    from anonymetry.service.app import ServiceConfig

__all__ = ["openapi_document"]

_LEVELS = ["none", "essential", "diagnostics", "usage"]


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        out["headers"] = headers
    return out


_RETRY = {"Retry-After": {"description": "seconds to wait (1–2)",
                          "schema": {"type": "string", "pattern": "^[12]$"}}}


def _post_errors() -> dict[str, Any]:
    return {
        "400": _error("malformed body, or a body that does not fit the schema; `detail` names "
                      "the field"),
        "401": _error("no token, or an unknown or revoked token"),
        "403": _error("the token's role lacks the `ingest` permission"),
        "405": _error("wrong method"),
        "413": _error("body larger than the limit (also after gzip inflation)"),
        "415": _error("wrong Content-Type or Content-Encoding"),
        "503": _error("the collector is overloaded; retry after `Retry-After` seconds", _RETRY),
    }


def openapi_document(config: ServiceConfig | None = None) -> dict[str, Any]:
    max_body = config.max_body if config is not None else 4 * 1024 * 1024
    level = {"type": "string", "enum": _LEVELS}
    event = {
        "type": "object",
        "required": ["id", "name", "time"],
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 128,
                   "description": "idempotency key, unique per device"},
            "name": {"type": "string", "description": "a declared event name"},
            "time": {"type": "string", "format": "date-time",
                     "description": "RFC 3339 with a time zone"},
            "user_id": {"type": ["string", "null"]},
            "device_id": {"type": ["string", "null"]},
            "consent": {"type": ["string", "null"], "enum": [*_LEVELS, None]},
            "attributes": {"type": "object", "additionalProperties": True},
        },
    }
    result = {
        "type": "object",
        "required": ["id", "status", "reason"],
        "properties": {
            "id": {"type": ["string", "null"]},
            "status": {"type": "string",
                       "enum": ["stored", "duplicate", "discarded", "rejected"]},
            "reason": {"type": ["string", "null"],
                       "description": "why rejected (naming the field) or discarded "
                                      "(consent, opted_out, expired)"},
        },
    }
    counts = {k: {"type": "integer", "minimum": 0}
              for k in ("stored", "duplicate", "discarded", "rejected")}
    auth = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "anonymetry collector",
            "version": "1",
            "description": "Privacy-first telemetry ingest. Raw identifiers are pseudonymized "
                           f"before anything is written. Bodies are limited to {max_body} bytes.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                },
                "Event": event,
                "Batch": {
                    "type": "object",
                    "required": ["events"],
                    "properties": {"events": {"type": "array", "maxItems": MAX_EVENTS,
                                              "items": {"$ref": "#/components/schemas/Event"}}},
                },
                "BatchResult": {
                    "type": "object",
                    "required": ["results", *counts],
                    "properties": {"results": {"type": "array",
                                               "items": result}, **counts},
                },
                "Consent": {
                    "type": "object",
                    "required": ["device_id", "level"],
                    "properties": {
                        "device_id": {"type": "string", "minLength": 1, "maxLength": 256},
                        "user_id": {"type": ["string", "null"], "maxLength": 256},
                        "level": level,
                    },
                },
                "ConsentResult": {
                    "type": "object",
                    "required": ["level", "deleted"],
                    "properties": {"level": level,
                                   "deleted": {"type": "integer", "minimum": 0}},
                },
                "ExportLogsServiceResponse": {
                    "type": "object",
                    "properties": {"partialSuccess": {
                        "type": "object",
                        "properties": {
                            "rejectedLogRecords": {"type": "string", "pattern": "^[0-9]+$"},
                            "errorMessage": {"type": "string"},
                        },
                    }},
                },
            },
        },
        "paths": {
            "/v1/events": {"post": {
                "summary": "Ingest a batch of events (our JSON format)",
                "security": auth,
                "parameters": [{"name": "Sec-GPC", "in": "header", "required": False,
                                "schema": {"type": "string"},
                                "description": "'1' caps consent at essential"}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Batch"}}}},
                "responses": {
                    "200": {"description": "a result per event, in input order",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/BatchResult"}}}},
                    **_post_errors(),
                },
            }},
            "/v1/logs": {"post": {
                "summary": "OTLP/HTTP logs export (protobuf or OTLP JSON)",
                "security": auth,
                "requestBody": {"required": True, "content": {
                    "application/x-protobuf": {"schema": {"type": "string",
                                                          "format": "binary"}},
                    "application/json": {"schema": {"type": "object"}},
                }},
                "responses": {
                    "200": {"description": "ExportLogsServiceResponse in the request's encoding",
                            "content": {
                                "application/json": {"schema": {
                                    "$ref": "#/components/schemas/ExportLogsServiceResponse"}},
                                "application/x-protobuf": {"schema": {"type": "string",
                                                                      "format": "binary"}},
                            }},
                    **_post_errors(),
                },
            }},
            "/v1/consent": {"post": {
                "summary": "Record a device's consent level; 'none' opts out and deletes its "
                           "stored events",
                "security": auth,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Consent"}}}},
                "responses": {
                    "200": {"description": "recorded", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ConsentResult"}}}},
                    **_post_errors(),
                },
            }},
            "/healthz": {"get": {
                "summary": "Liveness and queue depth",
                "responses": {"200": {"description": "serving", "content": {
                    "application/json": {"schema": {
                        "type": "object", "required": ["status", "pending"],
                        "properties": {"status": {"type": "string", "enum": ["ok"]},
                                       "pending": {"type": "integer", "minimum": 0},
                                       "time": {"type": "integer"}}}}}},
                              "405": _error("wrong method")},
            }},
            "/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {"application/json": {
                                          "schema": {"type": "object"}}}},
                              "405": _error("wrong method")},
            }},
        },
    }
