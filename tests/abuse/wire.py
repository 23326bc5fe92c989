"""Raw loopback clients for the abuse harness: TCP sockets driven by asyncio (nothing reads a
socket unless the caller asks, so "never reads" means exactly that), an HTTP/1.1 request, and a
minimal RFC 6455 client (masked frames, no extensions, no subprotocol).

Every call that waits takes a deadline or a timeout; nothing here can wait forever.
"""

import asyncio
import base64
import json
import os
import socket
import struct
import time

HOST = "127.0.0.1"

# RFC 6455 section 5.2 opcodes.
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Closed(Exception):
    """The peer ended the TCP connection (EOF or reset)."""


class WsClosed(Exception):
    """The server sent a close frame (RFC 6455 section 5.5.1); `code` is None without one."""

    def __init__(self, code, reason=""):
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


def deadline_in(seconds):
    return time.monotonic() + seconds


def left(deadline):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise asyncio.TimeoutError()
    return remaining


async def connect(port, rcvbuf=None, timeout=5.0):
    """A connected non-blocking socket to 127.0.0.1:port. `rcvbuf` shrinks the receive buffer
    before connecting, so that an attacker that never reads holds little kernel memory."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (HOST, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return Conn(sock)


class Conn:
    """One TCP connection with a read buffer filled only on demand."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.closed = False
        self.loop = asyncio.get_running_loop()

    async def send(self, data, timeout=10.0):
        await asyncio.wait_for(self.loop.sock_sendall(self.sock, data), timeout)

    def send_nowait(self, data):
        """Sends what the kernel takes now; the count of bytes sent (0 when full)."""
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0

    async def fill(self, deadline, size=65536):
        chunk = await asyncio.wait_for(self.loop.sock_recv(self.sock, size), left(deadline))
        if not chunk:
            raise Closed("EOF")
        self.buf += chunk
        return len(chunk)

    async def read_exact(self, n, deadline):
        while len(self.buf) < n:
            await self.fill(deadline, max(65536, n - len(self.buf)))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_until(self, sep, deadline, limit=1 << 20):
        while True:
            at = self.buf.find(sep)
            if at >= 0:
                out = bytes(self.buf[: at + len(sep)])
                del self.buf[: at + len(sep)]
                return out
            if len(self.buf) > limit:
                raise ValueError(f"no {sep!r} in the first {limit} bytes")
            await self.fill(deadline)

    async def read_to_eof(self, deadline, limit=64 << 20):
        try:
            while len(self.buf) <= limit:
                await self.fill(deadline)
        except Closed:
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    async def peek_line(self, timeout):
        """The first line the peer sent (an HTTP status line), or why there is none:
        'EOF', 'reset', 'nothing'. Reads at most a few KiB."""
        try:
            await self.fill(deadline_in(timeout), 4096)
        except asyncio.TimeoutError:
            return "nothing"
        except Closed:
            return "EOF"
        except OSError:
            return "reset"
        return bytes(self.buf).split(b"\r\n", 1)[0].decode("latin-1")

    def close(self, reset=False):
        if self.closed:
            return
        self.closed = True
        if reset:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.sock.close()


# --- HTTP/1.1 -------------------------------------------------------------------------------------

def http_request_bytes(method, path, headers=None, body=b"", keep_alive=False):
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_head(conn, deadline):
    head = await conn.read_until(b"\r\n\r\n", deadline, limit=64 << 10)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    return int(parts[1]), headers


def dechunk(raw):
    out, at = bytearray(), 0
    while True:
        end = raw.find(b"\r\n", at)
        if end < 0:
            return bytes(out)
        size = int(raw[at:end].split(b";")[0] or b"0", 16)
        if size == 0:
            return bytes(out)
        out += raw[end + 2 : end + 2 + size]
        at = end + 2 + size + 2


async def http(port, method, path, headers=None, body=b"", timeout=10.0):
    """One request on a new connection (Connection: close): (status, headers, body bytes).
    Raises Closed, OSError or asyncio.TimeoutError when no answer comes."""
    deadline = deadline_in(timeout)
    conn = await connect(port, timeout=left(deadline))
    try:
        await conn.send(http_request_bytes(method, path, headers, body), left(deadline))
        status, head = await read_head(conn, deadline)
        if "content-length" in head:
            data = await conn.read_exact(int(head["content-length"]), deadline)
        else:
            data = await conn.read_to_eof(deadline)
            if "chunked" in head.get("transfer-encoding", ""):
                data = dechunk(data)
        return status, head, data
    finally:
        conn.close()


async def http_outcome(port, method, path, headers=None, body=b"", timeout=10.0):
    """What a client sees: ('status', code, body) or ('error', why, b'') — never raises for
    a server that misbehaves."""
    try:
        status, _, data = await http(port, method, path, headers, body, timeout)
        return ("status", status, data)
    except asyncio.TimeoutError:
        return ("error", f"no answer within {timeout:g}s", b"")
    except Closed:
        return ("error", "connection closed without an answer", b"")
    except (ConnectionResetError, BrokenPipeError):
        return ("error", "connection reset without an answer", b"")
    except OSError as err:
        return ("error", f"{type(err).__name__}: {err}", b"")
    except ValueError as err:
        return ("error", f"bad answer: {err}", b"")


def describe(outcome):
    kind, what, _ = outcome
    return f"HTTP {what}" if kind == "status" else what


# --- WebSocket --------------------------------------------------------------------------------------

def mask_bytes(payload, key):
    """RFC 6455 section 5.3: payload XOR the repeated 4-byte key."""
    n = len(payload)
    if n == 0:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def frame(opcode, payload=b"", fin=True, key=None):
    """A client frame (always masked, RFC 6455 section 5.1)."""
    if isinstance(payload, str):
        payload = payload.encode()
    key = key if key is not None else os.urandom(4)
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + key + mask_bytes(payload, key)


def text(obj):
    return frame(TEXT, json.dumps(obj, separators=(",", ":")))


def close_payload(payload):
    if len(payload) >= 2:
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")
    return None, ""


class Ws:
    """A WebSocket client on a raw connection. `recv` answers pings and returns whole messages."""

    def __init__(self, conn):
        self.conn = conn
        self.close_code = None
        self.closed = False

    async def send(self, data, timeout=10.0):
        await self.conn.send(data, timeout)

    async def send_json(self, obj, timeout=10.0):
        await self.conn.send(text(obj), timeout)

    async def read_frame(self, deadline):
        b0, b1 = await self.conn.read_exact(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.conn.read_exact(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.conn.read_exact(8, deadline))[0]
        key = await self.conn.read_exact(4, deadline) if b1 & 0x80 else None
        payload = await self.conn.read_exact(n, deadline) if n else b""
        if key:
            payload = mask_bytes(payload, key)
        return bool(b0 & 0x80), b0 & 0x0F, payload

    async def recv(self, deadline):
        """The next text or binary message (bytes). Raises WsClosed after a close frame (and
        answers it), Closed when the TCP connection ends without one."""
        parts = []
        while True:
            try:
                fin, opcode, payload = await self.read_frame(deadline)
            except (Closed, ConnectionResetError, BrokenPipeError) as err:
                self.closed = True
                raise WsClosed(None, f"TCP ended without a close frame ({err})") from None
            if opcode == PING:
                await self._send_quietly(frame(PONG, payload))
                continue
            if opcode == PONG:
                continue
            if opcode == CLOSE:
                self.close_code, reason = close_payload(payload)
                self.closed = True
                await self._send_quietly(frame(CLOSE, payload[:2]))
                raise WsClosed(self.close_code, reason)
            parts.append(payload)
            if fin:
                return b"".join(parts)

    async def recv_json(self, deadline):
        return json.loads(await self.recv(deadline))

    async def _send_quietly(self, data):
        try:
            await self.conn.send(data, 2.0)
        except (OSError, asyncio.TimeoutError):
            pass

    def close(self, reset=False):
        self.conn.close(reset)


async def ws_open(port, path, headers=None, rcvbuf=None, timeout=5.0):
    """Opens a WebSocket: (Ws, 101, b'') or (None, status, body) when refused. Raises on a
    connection that fails or an answer that does not come within `timeout`."""
    deadline = deadline_in(timeout)
    conn = await connect(port, rcvbuf=rcvbuf, timeout=left(deadline))
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        all_headers = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        }
        all_headers.update(headers or {})
        await conn.send(http_request_bytes("GET", path, all_headers, keep_alive=True), left(deadline))
        status, head = await read_head(conn, deadline)
        if status != 101:
            body = b""
            if "content-length" in head:
                body = await conn.read_exact(int(head["content-length"]), deadline)
            conn.close()
            return None, status, body
        return Ws(conn), 101, b""
    except BaseException:
        conn.close()
        raise


async def ws_channels(port, timeout=5.0, rcvbuf=None):
    """An anonymous /ws client past its greeting (`authenticated`)."""
    ws, status, body = await ws_open(port, "/ws", rcvbuf=rcvbuf, timeout=timeout)
    if ws is None:
        raise ValueError(f"/ws refused: HTTP {status} {body[:200]!r}")
    try:
        greeting = await ws.recv_json(deadline_in(timeout))
    except BaseException:
        ws.close()
        raise
    if greeting.get("type") != "authenticated":
        ws.close()
        raise ValueError(f"/ws greeting: {greeting}")
    return ws


async def wait_reply(ws, want_id, deadline):
    """Reads until the reply carrying `id` = want_id; returns it and the pushes read before."""
    pushes = []
    while True:
        msg = await ws.recv_json(deadline)
        if msg.get("id") == want_id:
            return msg, pushes
        pushes.append(msg)
