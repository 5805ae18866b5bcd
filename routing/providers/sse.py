"""Server-sent events, parsed incrementally from a byte stream (never buffered whole)."""

from collections.abc import AsyncIterator


async def iter_sse(byte_chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, bytes]]:
    """Yield (event, data) per event as soon as its blank line arrives. Multi-line data is joined with \\n."""
    buffer = b""
    event, data_lines = "", []
    async for chunk in byte_chunks:
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                break
            line, buffer = buffer[:newline].rstrip(b"\r"), buffer[newline + 1 :]
            if not line:
                if data_lines:
                    yield event, b"\n".join(data_lines)
                event, data_lines = "", []
            elif line.startswith(b"data:"):
                data_lines.append(line[5:].lstrip(b" ") if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                event = line[6:].strip().decode()
            # id:, retry: and ":" comments carry nothing we relay.
    if data_lines:
        yield event, b"\n".join(data_lines)
