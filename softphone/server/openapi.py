"""The OpenAPI 3.1 document, generated from the endpoint registry and the msgspec models."""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec

from softphone import __version__
from softphone.protocol import frames
from softphone.protocol.errors import HTTP_STATUS
from softphone.protocol.models import ErrorBody
from softphone.server.api import ENDPOINTS

REF = "#/components/schemas/{name}"


# Rules across fields, which msgspec cannot state: an anonymous call names both parties
# (regular mode) or carries token credentials.
_NAMED = {"type": "string"}
ANONYMOUS_MODES = {
    "anyOf": [
        {"required": ["to", "from"], "properties": {"to": _NAMED, "from": _NAMED}},
        {"required": ["credentials"], "properties": {"credentials": {"type": "object"}}},
    ],
}


@functools.cache
def openapi_document(max_expires: int | None = None) -> dict[str, Any]:
    """The document; `max_expires` is the server's `subscription_max_expires`."""
    models: set[type[Any]] = {ErrorBody, *frames.ClientFrames.__args__}
    models |= {t for e in ENDPOINTS for t in (e.request, e.response) if t is not None}
    models |= set(frames.ServerFrames.__args__)
    ordered = sorted(models, key=lambda t: t.__name__)
    refs, components = msgspec.json.schema_components(ordered, ref_template=REF)
    components["AnonymousCallRequest"].update(ANONYMOUS_MODES)
    if max_expires is not None:
        for name in ("SubscriptionRequest", "SubscriptionRefresh"):
            components[name]["properties"]["expires"]["maximum"] = max_expires
    paths: dict[str, dict[str, Any]] = {}
    for e in ENDPOINTS:
        operation: dict[str, Any] = {
            "summary": e.summary,
            "operationId": e.handler.__name__,
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"{(\w+)}", e.path)
            ],
            "responses": {},
        }
        if e.auth != "none":
            operation["security"] = [{"bearer": []}]
        if e.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[ordered.index(e.request)]}},
            }
        ok: dict[str, Any] = {"description": "success"}
        if e.response is not None:
            ok["content"] = {e.content_type: {"schema": refs[ordered.index(e.response)]}}
        elif e.content_type != "application/json":
            ok["content"] = {e.content_type: {"schema": {"type": "string"}}}
        operation["responses"][str(e.status)] = ok
        for code in e.errors:
            status = str(HTTP_STATUS[code])
            entry = operation["responses"].setdefault(
                status,
                {
                    "description": "error; see error.code",
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(name="ErrorBody")}}
                    },
                },
            )
            entry["description"] = entry["description"] + f" {code.value}"
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "softphone signaling API",
            "version": __version__,
            "description": "Protocol v1. Normative text: docs/protocol.md.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
