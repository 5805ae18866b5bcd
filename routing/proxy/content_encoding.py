"""Request bodies sent with a Content-Encoding: gzip and deflate are inflated, bounded by the body limit after
every step (a gzip bomb is a 413, not a full memory); anything else is refused with 415. Called by the ASGI
router (config/asgi.py) before the view, so the view reads the body as the client meant it."""

import asyncio
import zlib

from core.bounds import clip
from core.errors import BodyTooLarge, InvalidRequest, UnsupportedMediaType

# zlib's window bits: gzip framing, or zlib's own (HTTP's "deflate"), or raw deflate (what some clients send).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
# A compressed body above 1 KB (up to ~1 MB inflated) is inflated on a thread: zlib releases the GIL.
_INFLATE_ON_LOOP_BYTES = 1024


def _content_encodings(headers) -> list[str]:
    codings = []
    for name, value in headers:
        if name == b"content-encoding":
            codings += [c.strip().lower() for c in value.decode("latin-1").split(",") if c.strip()]
    return [c for c in codings if c != "identity"]


def _inflate_one(data: bytes, wbits: int, limit: int) -> bytes:
    output, rest = [], data
    while rest:
        inflater = zlib.decompressobj(wbits)
        # max_length stops a bomb at limit + 1 bytes of output, whatever its ratio.
        output.append(inflater.decompress(rest, limit + 1 - sum(map(len, output))))
        if sum(map(len, output)) > limit or inflater.unconsumed_tail:
            raise BodyTooLarge(f"The request body is larger than {limit} bytes once decompressed.")
        if not inflater.eof:
            raise InvalidRequest("The request body is truncated: its compressed stream does not end.")
        rest = inflater.unused_data  # gzip allows several members, one after another
    return b"".join(output)


def _inflate(body: bytes, codings: list[str], limit: int) -> bytes:
    """Undo each Content-Encoding, last applied first; the result is bounded by `limit` after every step."""
    for coding in reversed(codings):
        try:
            body = _inflate_one(body, _WBITS[coding], limit)
        except zlib.error:
            if coding != "deflate":
                raise InvalidRequest(f"The request body is not valid {coding} data.") from None
            try:
                body = _inflate_one(body, -zlib.MAX_WBITS, limit)
            except zlib.error:
                raise InvalidRequest("The request body is not valid deflate data.") from None
    return body


async def decoded_body(headers, body: bytes, limit: int) -> bytes:
    """The body as sent before its Content-Encoding (ASGI `headers`), at most `limit` bytes; 415 for an encoding
    we do not take, 413 past the limit, 400 for a stream that is not what it claims."""
    codings = _content_encodings(headers)
    if not codings:
        return body
    unsupported = [c for c in codings if c not in _WBITS]
    if unsupported:
        raise UnsupportedMediaType(
            f"Content-Encoding '{clip(unsupported[0], 40)}' is not supported: send identity, gzip or deflate."
        )
    if len(body) <= _INFLATE_ON_LOOP_BYTES:
        return _inflate(body, codings, limit)
    return await asyncio.to_thread(_inflate, body, codings, limit)
