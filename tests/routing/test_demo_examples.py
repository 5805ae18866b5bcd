"""The demo provider's example values are valid against the schemas tools and structured outputs use."""

import jsonschema
import pytest

from routing.demo_examples import example_of

SCHEMAS = {
    "bounds": {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": 5, "maximum": 9, "multipleOf": 3},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "below": {"type": "integer", "maximum": -3},
            "code": {"type": "string", "minLength": 12, "maxLength": 14},
            "short": {"type": "string", "maxLength": 2},
        },
    },
    "nullable and unions": {
        "type": "object",
        "properties": {
            "maybe": {"type": ["null", "integer"]},
            "either": {"anyOf": [{"type": "null"}, {"type": "string", "format": "email"}]},
            "one": {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
            "fixed": {"const": "v1"},
        },
        "required": ["maybe", "either", "one", "fixed"],
    },
    "arrays": {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 3, "uniqueItems": True},
            "ids": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "uniqueItems": True},
            "none": {"type": "array", "maxItems": 0},
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": False},
        },
    },
    "allOf and refs": {
        "$defs": {"node": {"type": "object", "properties": {"name": {"type": "string"}, "child": {"$ref": "#"}}}},
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"tree": {"$ref": "#/$defs/node"}}, "required": ["tree"]},
        ],
    },
    "required without properties": {
        "type": "object",
        "required": ["anything"],
        "additionalProperties": {"type": "integer"},
    },
    "formats": {
        "type": "object",
        "properties": {f: {"type": "string", "format": f} for f in ("date-time", "date", "uri", "uuid", "ipv4")},
    },
}


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_the_example_is_valid_against_the_schema(schema):
    value = example_of(schema, hint="Book a table in New York")

    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())


def test_places_and_free_text_come_from_the_users_message():
    schema = {"type": "object", "properties": {"location": {"type": "string"}, "query": {"type": "string"}}}

    value = example_of(schema, hint="What's on in New York tonight?")

    assert value == {"location": "New York", "query": "What's on in New York tonight?"}
