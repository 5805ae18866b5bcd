"""How much of a client's input may reach storage, labels, logs and error messages: the audit, and the
functions that apply it. Standard library and orjson only (billing/usage.py and the log formatter import it).

Every place a client-controlled string or number of a /v1 request can land, and its bound:

    what the client controls          where it lands                          bound
    --------------------------------  --------------------------------------  ----------------------------------
    `model` (body) / {id} (path)      UsageRecord.alias, aggregates, the      catalogue alias or "" (an unknown
                                      dashboards' "Top models", metrics        model is stored as "", never the
                                      `alias` label, access log, span         text sent: pipeline.finish)
                                      error message ("The model '…'")         clip(): 150 characters + "…"
    URL path, method                  404/405 messages, the error log line    clip(): 150 characters + "…"
    any body field echoed by a        400 messages (content block types,      GatewayError clips every message
    validation message                 tool ids, orjson's parse error)        to MAX_MESSAGE_CHARS
    an upstream's error text/code     error message, UsageRecord.error_type,  MAX_MESSAGE_CHARS; error_type to
      (may echo the client's input)   metrics error_type label (64 chars)     its column (64)
    nesting depth of the body         the upstream encoder (orjson stops at   TOLLWAY_MAX_JSON_DEPTH (64):
                                      254 levels and would raise)             deeper is 400, naming the field
    `max_tokens`, `n`, numbers        admission's worst case (Redis/DB        positive integers up to
                                      counters), the upstream request          MAX_INTEGER (2**31 - 1)
    text length                       the tokenizer (raises at 10**6 chars)   token_estimate: exact for the first
                                                                              8,000 chars, bounded after
    body size, compressed or not      memory                                  TOLLWAY_MAX_BODY_BYTES, after
                                                                              decompression too (413)
    Content-Encoding                  the body decoder                        identity, gzip, deflate; else 415
    `user`, `metadata`, tools, any    the upstream request only: never        the body limit and the depth
      other field                      stored, logged or labelled             limit
    x-request-id, user-agent,         nothing: the gateway sends its own      —
      other headers                    request id and logs no header
    the API key                       never stored or logged; compared        —
                                      against its hash, by fixed length

And every string column of a usage row is cut to its UsageRecord max_length in UsageEvent.to_row
(USAGE_COLUMN_LIMITS; tests/proxy/test_client_strings_are_bounded.py checks it against the model), so no
value can make a batch insert fail on PostgreSQL, whatever path it took.
"""

from typing import Any

import orjson

ELLIPSIS = "…"
MAX_ECHO_CHARS = 150  # a client string quoted in a message, a record or a log line
MAX_MESSAGE_CHARS = 1000  # a whole error message
MAX_INTEGER = 2**31 - 1  # token counts fit PostgreSQL integer columns and any counter

# UsageRecord's CharField max_length, by column (billing/models.py; a test keeps the two equal).
USAGE_COLUMN_LIMITS = {
    "request_id": 64,
    "tenant_name": 200,
    "team_name": 200,
    "key_prefix": 32,
    "endpoint": 40,
    "alias": 150,
    "deployment": 150,
    "provider": 100,
    "prompt": 150,
    "error_type": 64,
    "strategy": 32,
}


def clip(value: Any, limit: int = MAX_ECHO_CHARS) -> str:
    """At most `limit` characters; a cut string ends with "…" so a reader knows it was cut."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS


def bounded_row(row: dict[str, Any]) -> dict[str, Any]:
    """A usage row whose every string column fits its database column."""
    for column, limit in USAGE_COLUMN_LIMITS.items():
        value = row.get(column)
        if value is None:
            continue
        if not isinstance(value, str):
            value = str(value)
        if len(value) > limit:
            value = clip(value, limit)
        row[column] = value
    return row


# orjson encodes at most 254 nested containers and raises beyond: the upstream encoders must never meet that.
ORJSON_MAX_DEPTH = 254
MAX_JSON_DEPTH_ALLOWED = 200  # the adapters nest a client's value a few levels deeper than it came


def _is_deeper_than(value: Any, limit: int) -> bool:
    """orjson itself (Rust, ~30 ms for 5 MB) measures the depth: wrapped in 254 - limit lists, a value nested
    more than `limit` levels crosses orjson's own limit. A walk in Python took seconds on the same body."""
    for _ in range(ORJSON_MAX_DEPTH - limit):
        value = [value]
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return True
    return False


def too_deep(body: Any, limit: int) -> str | None:
    """None if `body` (level 1) nests at most `limit` containers; else the path to the field that goes deeper,
    followed down a few levels ("tools[0].input_schema"), each step checked by orjson."""
    if not _is_deeper_than(body, limit):
        return None
    path, node, depth = "", body, 1
    for _ in range(4):
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            if isinstance(child, dict | list) and _is_deeper_than(child, limit - depth):
                path += f"[{key}]" if isinstance(key, int) else (f".{clip(key, 40)}" if path else clip(key, 40))
                node, depth = child, depth + 1
                break
        else:
            break
    return clip(path or "(body)")
