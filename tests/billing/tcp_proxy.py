"""A TCP forwarder on loopback that a test can cut, to take a real Redis away from a running gateway."""

import asyncio
import threading

from tests.upstreams.server import free_port


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int, *, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _accept(self, reader, writer) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._links.update({writer, upstream_writer})
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    def start(self) -> "CuttableProxy":
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", self.port), self._loop
        ).result()
        return self

    def cut(self) -> None:
        """Stop listening and drop every open connection: Redis is gone, as far as the gateway can tell."""

        async def cut_all():
            self._server.close()
            for writer in self._links:
                writer.transport.abort()

        asyncio.run_coroutine_threadsafe(cut_all(), self._loop).result()

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
