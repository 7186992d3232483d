"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

Pydantic emits JSON Schema 2020-12, which OpenAPI 3.1 uses as is, so the
schemas are the models' own; nothing here is written by hand per endpoint.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from listener.errors import ListenerError

__all__ = ["openapi"]

_PARAM = re.compile(r"{(\w+)}")


class _ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every failure: a stable code, a message naming what was wrong, and details."""

    error: _ErrorBody


def _error_statuses() -> dict[int, str]:
    out: dict[int, str] = {}
    stack: list[type[ListenerError]] = [ListenerError]
    while stack:
        cls = stack.pop()
        out.setdefault(cls.status, (cls.__doc__ or cls.code).strip())
        stack.extend(cls.__subclasses__())
    return out


def openapi(routes: list[Any], *, prefix: str, title: str = "Listener", version: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for `routes` (each a `routes.Route`) mounted under `prefix`."""
    from listener import __version__

    Mode = Literal["validation", "serialization"]
    wanted: list[tuple[type[BaseModel], Mode]] = [(ErrorResponse, "serialization")]
    for r in routes:
        if r.body is not None:
            wanted.append((r.body, "validation"))
        if r.form is not None:
            wanted.append((r.form, "validation"))
        if r.query is not None:
            wanted.append((r.query, "validation"))
        if isinstance(r.response, type) and issubclass(r.response, BaseModel):
            wanted.append((r.response, "serialization"))
    refs, definitions = models_json_schema(list(dict.fromkeys(wanted)), ref_template="#/components/schemas/{model}")
    schemas = definitions.get("$defs", {})

    errors = _error_statuses()
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {"operationId": r.operation_id, "summary": r.summary, "tags": [r.tag]}
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(r.path)
        ]
        if r.query is not None:
            query_schema = r.query.model_json_schema(ref_template="#/components/schemas/{model}")
            required = set(query_schema.get("required", []))
            for name, schema in query_schema.get("properties", {}).items():
                param = {"name": name, "in": "query", "required": name in required, "schema": schema}
                if schema.get("type") == "array":
                    param.update(style="form", explode=True)
                params.append(param)
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": refs[(r.body, "validation")]}}}
        elif r.form is not None:  # read by the handler as it streams in: an upload
            op["requestBody"] = {"required": True, "content": {"multipart/form-data": {
                "schema": refs[(r.form, "validation")]}}}
        responses: dict[str, Any] = {}
        if r.status == 101:
            responses["101"] = {"description": "Switching to the websocket protocol."}
        elif isinstance(r.response, type) and issubclass(r.response, BaseModel):
            responses[str(r.status)] = {"description": r.summary, "content": {"application/json": {
                "schema": refs[(r.response, "serialization")]}}}
            for status, description in r.also:
                responses[str(status)] = {"description": description, "content": {"application/json": {
                    "schema": refs[(r.response, "serialization")]}}}
        elif r.response is dict:
            responses[str(r.status)] = {"description": r.summary, "content": {"application/json": {
                "schema": {"type": "object"}}}}
        elif r.response is str:
            responses[str(r.status)] = {"description": r.summary, "content": {"text/plain": {
                "schema": {"type": "string"}}}}
        elif isinstance(r.response, str):  # a media type: a download such as text/csv
            responses[str(r.status)] = {"description": r.summary, "content": {r.response: {
                "schema": {"type": "string"}}}}
        else:
            responses["204"] = {"description": r.summary}
        error_ref = refs[(ErrorResponse, "serialization")]
        for status in sorted({401, 403, 404, 409, 410, 413, 422} if not r.public else set()):
            responses[str(status)] = {"description": errors.get(status, "Error"),
                                      "content": {"application/json": {"schema": error_ref}}}
        op["responses"] = responses
        if r.public:
            op["security"] = []
        paths.setdefault((prefix if r.prefixed else "") + r.path, {})[r.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version or __version__,
                 "description": "Long-running jobs driven by events. Every endpoint but health needs a bearer token."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }
