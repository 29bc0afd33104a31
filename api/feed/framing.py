"""Wire framing shared by every client: an HTTP/1.1 chunk, a WebSocket server frame."""

from __future__ import annotations


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk: an event stream uses chunked transfer encoding."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final, unmasked server frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload
