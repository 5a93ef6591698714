"""Bodies generated from the server's own OpenAPI document are accepted: every rule the server
checks on a body is in the document (issue 12, failure 8). "Accepted" means not refused as a bad
body (400/422); a schema-valid call to a user who does not exist is still 404.

The strategies come from the schemas by a small converter for the JSON Schema the document uses
(objects, $ref, anyOf, enum, patterns, lengths, bounds), so no extra dependency is needed; how
the async examples run is explained in test_fuzz.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softphone.server.openapi import openapi_document
from tests.server.harness import SDP, Party
from tests.server.test_bad_input import CHEAP_HASH

Schema = dict[str, Any]
DOCUMENT = openapi_document(86400)  # the default subscription_max_expires
COMPONENTS: dict[str, Schema] = DOCUMENT["components"]["schemas"]
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def from_schema(schema: Schema) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        return from_schema(COMPONENTS[schema["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in schema and "type" not in schema:
        return st.one_of([from_schema({**schema, **alt, "anyOf": None}) for alt in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return objects(schema)
    if kind == "string":
        return strings(schema)
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema["items"]), min_size=schema.get("minItems", 0))
    raise AssertionError(f"schema feature not covered: {schema}")


def strings(schema: Schema) -> st.SearchStrategy[str]:
    longest = schema.get("maxLength", 2000)
    pattern: str | None = schema.get("pattern")
    text = st.text(max_size=longest) if pattern is None else st.from_regex(pattern)
    return text.filter(lambda s: len(s) <= longest)


def objects(schema: Schema) -> st.SearchStrategy[dict[str, Any]]:
    """Required properties always, optional ones sometimes; a mode of an `anyOf` at object
    level (anonymous calls) makes its properties required and narrows their schemas."""
    properties: dict[str, Schema] = dict(schema.get("properties", {}))
    modes = [m for m in schema.get("anyOf") or [] if m]
    if modes:
        return st.sampled_from(modes).flatmap(
            lambda mode: objects(
                {
                    "properties": {
                        **properties,
                        **{k: {**properties[k], **v} for k, v in mode["properties"].items()},
                    },
                    "required": [*schema.get("required", []), *mode["required"]],
                }
            )
        )
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {k: narrowed(properties[k]) for k in properties if k in required},
        optional={k: from_schema(v) for k, v in properties.items() if k not in required},
    )


def narrowed(schema: Schema) -> st.SearchStrategy[Any]:
    """A property a mode requires as a string: the string branch of its `anyOf`."""
    if schema.get("type") == "string" and "anyOf" in schema:
        (branch,) = [b for b in schema["anyOf"] if b.get("type") == "string"]
        return from_schema(branch)
    if schema.get("type") == "object" and "anyOf" in schema:
        (branch,) = [b for b in schema["anyOf"] if "$ref" in b]
        return from_schema(branch)
    return from_schema(schema)


def request_schema(method: str, path: str) -> Schema:
    body = DOCUMENT["paths"][path][method]["requestBody"]
    schema: Schema = body["content"]["application/json"]["schema"]
    return schema


def accepted(status: int, payload: Any) -> None:
    assert status not in (400, 422), payload
    assert status < 500, payload


async def parties(client: Any) -> tuple[Party, Party, str]:
    alice, desk = Party(client, "alice"), Party(client, "desk")
    for party in (alice, desk):
        await party.login()
        await party.subscribe(force_logout=True)  # each example is a new device
        await party.connect()
    _, call = await alice.make("desk")
    await desk.act(call["id"], "answer", {"sdp": SDP})
    return alice, desk, call["id"]


async def cheap(client: Any) -> None:
    from softphone.server.services import SERVICES
    from tests.conftest import USERS, app_of

    store = app_of(client)[SERVICES].store
    for name in USERS:
        store.update_user(name, password_hash=CHEAP_HASH)


@SETTINGS
@given(body=from_schema(request_schema("post", "/v1/calls")))
async def test_make_call_bodies(client: Any, body: dict[str, Any]) -> None:
    alice = Party(client, "alice")
    await cheap(client)
    await alice.login()
    await alice.subscribe(force_logout=True)  # each example is a new device
    accepted(*await alice.request("POST", "/v1/calls", body))


@SETTINGS
@given(body=from_schema(request_schema("post", "/v1/calls/{call_id}/dtmf")))
async def test_dtmf_bodies(client: Any, body: dict[str, Any]) -> None:
    await cheap(client)
    alice, desk, call_id = await parties(client)
    try:
        accepted(*await alice.request("POST", f"/v1/calls/{call_id}/dtmf", body))
    finally:
        await alice.act(call_id, "end")
        await asyncio.gather(alice.drop(), desk.drop())


@SETTINGS
@given(body=from_schema(request_schema("post", "/v1/subscriptions")))
async def test_subscribe_bodies(client: Any, body: dict[str, Any]) -> None:
    alice = Party(client, "alice")
    await cheap(client)
    await alice.login()
    accepted(*await alice.request("POST", "/v1/subscriptions", body))


@SETTINGS
@given(body=from_schema(request_schema("post", "/v1/anonymous/calls")))
async def test_anonymous_call_bodies(client: Any, body: dict[str, Any]) -> None:
    status, payload = await Party(client, "guest").request(
        "POST", "/v1/anonymous/calls", json.dumps(body).encode()
    )
    accepted(status, payload)
