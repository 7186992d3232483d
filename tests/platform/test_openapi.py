"""The OpenAPI 3.1 document: valid, complete (every route of the app), resolvable, and true to the responses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import OpenAPIV31SpecValidator

from listener.platform.server import create_app
from tests.conftest import Server
from tests.platform.test_server import API, call

pytestmark = pytest.mark.anyio

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


async def document(server: Server) -> dict[str, Any]:
    status, doc = await call(server, "GET", f"{API}/openapi.json", server.admin_token)
    assert status == 200
    assert isinstance(doc, dict)
    return doc


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve (at {part!r})"
        node = node[part]
    return node


async def test_the_document_is_valid_openapi_3_1(server: Server) -> None:
    doc = await document(server)
    assert doc["openapi"] == "3.1.0"
    errors = [e.message for e in OpenAPIV31SpecValidator(doc).iter_errors()]
    assert errors == []
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}


async def test_every_route_of_the_app_is_in_the_document(server: Server) -> None:
    doc = await document(server)
    app = create_app(server.platform)
    # The web page (/ and /static/, named web_*) is not part of the API.
    registered = {(r.resource.canonical, r.method.lower()) for r in app.router.routes()
                  if r.method != "HEAD" and r.resource is not None and not (r.name or "").startswith("web_")}
    documented = {(path, method) for path, method, _ in operations(doc)}
    assert registered - documented == set()  # every route is documented
    assert documented - registered == set()  # and nothing else is
    for expected in [(f"{API}/openapi.json", "get"), (f"{API}/events/stream", "get"), (f"{API}/jobs/{{jobId}}", "get"),
                     (f"{API}/jobs/{{jobId}}/outcome/acknowledge", "post"), (f"{API}/actions/trigger", "post")]:
        assert expected in documented
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))


async def test_every_operation_has_responses_parameters_and_security(server: Server) -> None:
    doc = await document(server)
    error_ref = "#/components/schemas/ErrorResponse"
    for path, method, op in operations(doc):
        where = f"{method.upper()} {path}"
        responses = op.get("responses")
        assert responses, where
        assert any(code.startswith("2") or code == "101" for code in responses), where
        for response in responses.values():
            assert response["description"], where
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), where
        if path == f"{API}/health":
            assert op["security"] == [] and "401" not in responses
        else:
            assert "security" not in op, where  # the document's default: a bearer token
            assert responses["401"]["content"]["application/json"]["schema"] == {"$ref": error_ref}, where
    assert doc["security"] == [{"bearerAuth": []}]


async def test_every_ref_resolves(server: Server) -> None:
    doc = await document(server)
    found = set(refs(doc))
    assert "#/components/schemas/Job" in found and "#/components/schemas/ErrorResponse" in found
    for ref in found:
        assert ref.startswith("#/components/schemas/"), ref
        assert isinstance(resolve(doc, ref), dict)


async def test_the_list_and_stream_parameters_are_documented(server: Server) -> None:
    doc = await document(server)
    params = {p["name"]: p for p in doc["paths"][f"{API}/jobs"]["get"]["parameters"]}
    assert set(params) == {"status", "type", "operation", "createdBy", "parentId", "isPart", "search", "metadata",
                           "sort", "limit", "offset"}
    assert params["status"]["schema"]["type"] == "array" and params["status"]["explode"] is True
    assert params["metadata"]["schema"]["type"] == "array" and params["metadata"]["explode"] is True
    assert "-duration" in str(params["sort"]["schema"])
    counts = doc["paths"][f"{API}/job-counts"]["get"]
    assert {p["name"] for p in counts["parameters"]} == {"type", "operation", "createdBy", "isPart"}
    assert counts["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobCounts"}
    bulk = doc["paths"][f"{API}/jobs/bulk"]["post"]
    assert bulk["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobBulk"}
    assert {"403", "409", "422"} <= set(bulk["responses"])
    stream = doc["paths"][f"{API}/events/stream"]["get"]
    assert {p["name"] for p in stream["parameters"]} == {"after", "agent", "topic", "filter", "batch", "share",
                                                                "ready", "window", "listens", "workers"}
    assert "101" in stream["responses"]
    create = doc["paths"][f"{API}/jobs"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobCreate"}
    assert "202" in create["responses"]


async def test_the_document_describes_the_status_words_and_job_types(server: Server) -> None:
    """`?status=` takes other systems' words in any case and nothing else; a type is any lowercase identifier."""
    doc = await document(server)
    params = {p["name"]: p["schema"] for p in doc["paths"][f"{API}/jobs"]["get"]["parameters"]}
    word = params["status"]["items"]
    for name in ("SUCCESS", "pending", "RETRY", "TIMEOUT", "REVOKED", "processing", "completed", "cancelled"):
        assert name in word["description"]
    pattern = re.compile(word["pattern"])
    for ok in ("SUCCESS", "success", "Success", "pending", "PENDING", "RETRY", "timeout", "created", "STARTED"):
        assert pattern.search(ok), ok
    for bad in ("done", "", "success ", "SUCCEEDED", "pendingx", "REVO\u212aED"):
        assert not pattern.search(bad), bad
    kind = re.compile(params["type"]["items"]["pattern"])
    assert all(kind.search(t) for t in ("workbook", "voters", "import_voters", "geocode_households"))
    assert not any(kind.search(t) for t in ("Voters", "import-voters", "_x", "9x", ""))
    job = doc["components"]["schemas"]["Job"]
    assert job["properties"]["fiddlerStatus"]["enum"] == ["PENDING", "STARTED", "SUCCESS", "FAILURE", "RETRY",
                                                          "REVOKED"]
    assert job["properties"]["fiddlerStatus"]["readOnly"] is True


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> OAS31Validator:
    return OAS31Validator({**schema, "components": doc["components"]}, format_checker=oas31_format_checker)


def response_schema(doc: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][API + path][method]["responses"][str(status)]["content"][
        "application/json"]["schema"]
    return schema


async def test_real_responses_match_their_schemas(server: Server) -> None:
    doc = await document(server)
    t = server.admin_token
    api = server.platform.api.as_actor("admin")
    done = await api.jobs.ack((await api.jobs.create(type="workbook", operation="export")).id)
    await api.jobs.complete(done.id, outcome={"message": "ok", "next": {"type": "url", "url": "https://x.io"}})
    samples: list[tuple[str, str, int, Any]] = [
        ("post", "/jobs", 202, {"type": "workbook", "operation": "export"}),
        ("get", "/jobs", 200, None),
        ("get", f"/jobs/{done.id}", 200, None),
        ("get", "/events", 200, None),
        ("post", "/spaces", 201, {"name": "Red"}),
        ("get", "/users/me", 200, None),
        ("get", "/jobs/jb_nope", 404, None),
        ("post", "/jobs", 422, {"type": "nope"}),
    ]
    for method, path, status, body in samples:
        got, answer = await call(server, method.upper(), API + path, t, **({"json": body} if body else {}))
        assert got == status, answer
        template = "/jobs/{jobId}" if path.startswith("/jobs/") else path
        errors = list(validator(doc, response_schema(doc, method, template, status)).iter_errors(answer))
        assert errors == [], (method, path, [e.message for e in errors])
    # The schemas are not vacuous: a job without its id does not pass.
    _, job = await call(server, "GET", f"{API}/jobs/{done.id}", t)
    del job["id"]
    assert not validator(doc, response_schema(doc, "get", "/jobs/{jobId}", 200)).is_valid(job)


async def test_the_document_needs_a_token(server: Server) -> None:
    status, body = await call(server, "GET", f"{API}/openapi.json")
    assert status == 401 and body["error"]["code"] == "unauthorized"
