"""Direct writes over real loopback sockets: who is on a channel's route, and bytes in order
when the kernel buffer fills and the transport takes the rest."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from api.feed.direct import SSE, WS, DirectWriter
from api.feed.framing import ws_frame
from api.feed.hub import SLOW, Hub
from api.feed.messages import Message
from domain.events import FeedEvent, FeedKind
from domain.ids import new_id

Accept = Callable[[], Awaitable[asyncio.WriteTransport]]


class Accepted(asyncio.Protocol):
    def __init__(self, queue: asyncio.Queue[asyncio.WriteTransport]) -> None:
        self.queue = queue

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self.queue.put_nowait(transport)


@asynccontextmanager
async def loopback() -> AsyncIterator[tuple[int, Accept]]:
    """A listening port and a way to take the server side of the next connection."""
    queue: asyncio.Queue[asyncio.WriteTransport] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Accepted(queue), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, lambda: asyncio.wait_for(queue.get(), 5)


async def read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(n), 5)


def read_to_end(peer: socket.socket) -> bytes:
    """In a thread: the event loop must keep flushing the transport meanwhile."""
    peer.settimeout(5)
    received = bytearray()
    with peer:
        while chunk := peer.recv(65_536):
            received += chunk
    return bytes(received)


def publish(hub: Hub, offset: int) -> Message:
    return hub.publish_event(0, offset, FeedEvent(meme_id=new_id(), kind=FeedKind.RENDERED))


async def test_a_channel_reaches_exactly_its_direct_members_as_they_come_and_go() -> None:
    hub = Hub("k", history_size=100, queue_size=10)
    hub.history.start(0, 0)
    async with loopback() as (port, accept):
        sse_reader, sse_writer = await asyncio.open_connection("127.0.0.1", port)
        sse = hub.connect()
        hub.subscribe(sse, ["new"])  # subscribed first, direct afterwards
        hub.go_direct(sse, DirectWriter(SSE, await accept(), 1 << 20))
        first = publish(hub, 0)
        assert await read_exactly(sse_reader, len(first.sse_chunk)) == first.sse_chunk

        ws_reader, ws_writer = await asyncio.open_connection("127.0.0.1", port)
        ws = hub.connect()
        hub.go_direct(ws, DirectWriter(WS, await accept(), 1 << 20))
        hub.subscribe(ws, ["new"])  # direct first, subscribed afterwards
        queued = hub.connect()  # no socket of its own: the mailbox path
        hub.subscribe(queued, ["new"])
        second = publish(hub, 1)
        assert await read_exactly(sse_reader, len(second.sse_chunk)) == second.sse_chunk
        assert await read_exactly(ws_reader, len(second.ws_frame)) == second.ws_frame
        assert second.ws_frame == ws_frame(second.ws.encode())
        assert await queued.mailbox.get_batch(1.0) == [second]

        hub.unsubscribe(sse, ["new"])
        hub.disconnect(queued)
        third = publish(hub, 2)
        assert await read_exactly(ws_reader, len(third.ws_frame)) == third.ws_frame
        assert await queued.mailbox.get_batch(0.01) == []
        try:
            stray = await asyncio.wait_for(sse_reader.read(1), 0.2)
        except TimeoutError:
            stray = b""
        assert stray == b""  # nothing reached the client that left the channel
        assert hub.delivered == 1 + 3 + 1
        sse_writer.close()
        ws_writer.close()


async def test_a_full_socket_keeps_the_byte_order_until_the_client_is_dropped() -> None:
    """The peer never reads: the kernel takes what it can, the transport queues the rest
    (order kept across the switch), and past the limit the client is closed as slow."""
    hub = Hub("k", history_size=1000, queue_size=10)
    hub.history.start(0, 0)
    async with loopback() as (port, accept):
        peer = socket.socket()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.connect(("127.0.0.1", port))
        transport = await accept()
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client = hub.connect()
        hub.subscribe(client, ["new"])
        hub.go_direct(client, DirectWriter(SSE, transport, 16_384))
        sent: list[Message] = []
        for offset in range(2_000):
            sent.append(publish(hub, offset))
            if client not in hub.clients:
                break
        assert client not in hub.clients and hub.dropped_slow == 1
        assert transport.get_write_buffer_size() > 0  # the transport did take over

        received = await asyncio.to_thread(read_to_end, peer)
    # The farewell is one chunk ("<size>\r\nevent: close...") then the last-chunk marker.
    close_at = received.rfind(b"event: close")
    farewell_at = received.rfind(b"\r\n", 0, close_at - 2) + 2
    delivered, farewell = bytes(received[:farewell_at]), bytes(received[farewell_at:])
    assert SLOW.encode() in farewell and farewell.endswith(b"0\r\n\r\n")
    # Before it: whole events, in the order published, nothing interleaved or lost between.
    total, whole = 0, 0
    while total < len(delivered):
        total += len(sent[whole].sse_chunk)
        whole += 1
    assert delivered == b"".join(m.sse_chunk for m in sent[:whole])
    assert 0 < whole < len(sent)
