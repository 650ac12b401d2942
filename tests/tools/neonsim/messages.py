"""HTTP/RTSP message reading and WebSocket framing."""
import asyncio
import struct

MAX_LINE = 8192
MAX_HEADERS = 100
MAX_BODY = 1 << 20


class ProtocolError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


async def read_message(reader, allow_chunked, writer=None):
    """Start line, lower-cased headers, body; None at EOF before a message.
    With a writer (HTTP), "Expect: 100-continue" is answered before the body."""
    line = b""
    while not line.strip():
        try:
            line = await reader.readline()
        except ValueError:
            raise ProtocolError(400, "line too long")
        if not line:
            return None
    if len(line) > MAX_LINE:
        raise ProtocolError(400, "line too long")
    start = line.decode("latin-1").strip()
    headers = {}
    while True:
        try:
            h = await reader.readline()
        except ValueError:
            raise ProtocolError(431, "header too long")
        if not h:
            raise asyncio.IncompleteReadError(h, None)
        h = h.decode("latin-1").rstrip("\r\n")
        if not h:
            break
        if len(headers) >= MAX_HEADERS:
            raise ProtocolError(431, "too many headers")
        if ":" not in h:
            raise ProtocolError(400, "malformed header")
        k, v = h.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = b""
    if writer is not None and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if allow_chunked and "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        total = 0
        while True:
            size_line = await reader.readline()
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ProtocolError(400, "bad chunk size")
            if size == 0:
                while (await reader.readline()).strip():
                    pass
                break
            total += size
            if total > MAX_BODY:
                raise ProtocolError(413, "body too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif "content-length" in headers:
        try:
            n = int(headers["content-length"])
        except ValueError:
            raise ProtocolError(400, "bad Content-Length")
        if n < 0 or n > MAX_BODY:
            raise ProtocolError(413, "body too large")
        body = await reader.readexactly(n)
    return start, headers, body


def ws_frame(opcode, payload):
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126)) + struct.pack("!H", n)
    else:
        head = bytes((0x80 | opcode, 127)) + struct.pack("!Q", n)
    return head + payload


def ws_unmask(mask, data):
    n = len(data)
    if not n:
        return data
    m = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")
