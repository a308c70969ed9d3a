"""S15: every operation and every component-schema field of the live server's OpenAPI document
is known to the library (rota.known), and what it names exists."""

from __future__ import annotations

from typing import Any, Dict, Set

import rota
from rota import known


def _properties(schema: Dict[str, Any], schemas: Dict[str, Any]) -> Set[str]:
    """A schema's properties, with those of the schemas it extends (``allOf``)."""
    out = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        target = schemas[part["$ref"].rsplit("/", 1)[1]] if "$ref" in part else part
        out |= _properties(target, schemas)
    return out


def test_s15_openapi_operations_are_all_known(client: rota.Client) -> None:
    doc = client.openapi()
    live = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "put", "post", "patch", "delete")
    }
    unknown = sorted(live - set(known.OPERATIONS))
    assert not unknown, f"operations the library does not know: {unknown}"
    gone = sorted(set(known.OPERATIONS) - live)
    assert not gone, f"operations the library lists that the server lacks: {gone}"
    for (method, path), name in known.OPERATIONS.items():
        if name is None:
            continue
        assert callable(getattr(rota.Client, name, None)), f"Client.{name} ({method} {path})"
        assert callable(getattr(rota.AsyncClient, name, None)), f"AsyncClient.{name} ({method} {path})"


def test_s15_openapi_fields_are_all_known(client: rota.Client) -> None:
    schemas = client.openapi()["components"]["schemas"]
    missing = {}
    for name, schema in schemas.items():
        fields = _properties(schema, schemas)
        unknown = fields - known.known_fields(name)
        if unknown:
            missing[name] = sorted(unknown)
    assert not missing, f"fields the library does not know: {missing}"
    for name, fields in known.UNTYPED.items():
        assert fields <= known.known_fields(name), name
        assert fields <= _properties(schemas[name], schemas), name


def test_s15_the_check_notices_what_it_does_not_know() -> None:
    fake = {"Task": {"properties": {"id": {}, "brand_new": {}}}}
    assert _properties(fake["Task"], fake) - known.known_fields("Task") == {"brand_new"}
    assert known.known_fields("NoSuchSchema") == frozenset()
