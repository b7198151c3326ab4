#!/usr/bin/env python3
"""An HTTP/2 client that pauses inside frames, written frame by frame over TLS.

lbd gives an idle HTTP/2 connection's buffers back while it waits with no stream open. This
client makes it wait at the worst moments: after a whole request, in the middle of a HEADERS
frame (5 of its bytes sent), and between a HEADERS frame and its CONTINUATION. lbd also gives back
what a burst of streams grew (stream store, frame buffers), so the client then sends two bursts of
60 requests at once with a pause between them, and a last request. Every request must still be
answered 200 with the backend's body.

Usage: h2_pauses.py PORT [PAUSE_SECONDS]     exit 0 and "ok" when all answers came back whole.

With --until-goaway SECONDS it makes one request, prints "idle" and then waits, with no stream
open, for lbd's GOAWAYs and the close that follows (at most SECONDS): it prints "goaway LAST_ID"
for each and "closed after T s", and fails if either does not come. With --no-ping-ack as well,
it never answers a ping, so a graceful GOAWAY never gets to name the last stream.
"""
import socket
import ssl
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING, CONTINUATION, GOAWAY, RST = 0, 1, 4, 6, 9, 7, 3
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def header_block(authority):
    # :method GET, :scheme https, :path / (static table), :authority as a literal.
    return bytes([0x82, 0x87, 0x84, 0x41, len(authority)]) + authority


class Conn:
    def __init__(self, port):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s = ctx.wrap_socket(raw, server_hostname="a.test")
        if self.s.selected_alpn_protocol() != "h2":
            sys.exit(f"ALPN gave {self.s.selected_alpn_protocol()!r}, not h2")
        self.buf = b""
        self.s.sendall(PREFACE + frame(SETTINGS, 0, 0))

    def send(self, data, pause_after=0.0):
        self.s.sendall(data)
        if pause_after:
            time.sleep(pause_after)

    def read_frame(self):
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            chunk = self.s.recv(65536)
            if not chunk:
                sys.exit("lbd closed the connection")
            self.buf += chunk
        n = int.from_bytes(self.buf[:3], "big")
        kind, flags = self.buf[3], self.buf[4]
        stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload = self.buf[9 : 9 + n]
        self.buf = self.buf[9 + n :]
        return kind, flags, stream, payload

    def response(self, stream):
        """(status byte of the first header field, body) of `stream`."""
        return self.responses([stream])[stream]

    def responses(self, streams):
        """{stream: (status byte of the first header field, body)} once every one has ended."""
        status, body, open_ = {}, {sid: b"" for sid in streams}, set(streams)
        while open_:
            kind, flags, sid, payload = self.read_frame()
            if kind == SETTINGS and not flags & ACK:
                self.s.sendall(frame(SETTINGS, ACK, 0))
            elif kind in (GOAWAY, RST):
                sys.exit(f"lbd sent frame type {kind} on stream {sid}: {payload!r}")
            elif sid in open_ and kind == HEADERS:
                status[sid] = payload[0]
            elif sid in open_ and kind == DATA:
                body[sid] += payload
            if sid in open_ and kind in (HEADERS, DATA) and flags & END_STREAM:
                open_.discard(sid)
        return {sid: (status.get(sid), body[sid]) for sid in streams}


def until_goaway(port, limit, ping_ack=True):
    c = Conn(port)
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, header_block(b"a.test")))
    status, body = c.response(1)
    if status != 0x88:
        sys.exit(f"first request: status field {status!r}, body {body!r}")
    print("idle", flush=True)
    started = time.monotonic()
    c.s.settimeout(limit)
    goaway = None
    while True:
        try:
            kind, flags, _, payload = c.read_frame()
        except SystemExit:
            break  # lbd closed the connection
        except (socket.timeout, TimeoutError):
            sys.exit(f"no close within {limit} s (GOAWAY: {goaway})")
        if kind == SETTINGS and not flags & ACK:
            c.s.sendall(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK and ping_ack:
            # A graceful GOAWAY first names the largest stream id, then pings, and names the
            # real last stream once the ping is answered.
            c.s.sendall(frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            goaway = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            print(f"goaway {goaway}", flush=True)
    if goaway is None:
        sys.exit("closed without a GOAWAY")
    print(f"closed after {time.monotonic() - started:.2f} s", flush=True)


def main():
    if len(sys.argv) > 3 and sys.argv[2] == "--until-goaway":
        until_goaway(int(sys.argv[1]), float(sys.argv[3]), "--no-ping-ack" not in sys.argv[4:])
        return
    port = int(sys.argv[1])
    pause = float(sys.argv[2]) if len(sys.argv) > 2 else 0.3
    c = Conn(port)
    block = header_block(b"a.test")

    def verify(what, status, body):
        # 0x88: ":status: 200" from the static table.
        if status != 0x88 or not body.endswith(b"\n"):
            sys.exit(f"{what}: status field {status!r}, body {body!r}")

    def check(stream, what):
        status, body = c.response(stream)
        verify(what, status, body)
        print(f"{what}: 200 {body!r}")

    def burst(first, what):
        streams = list(range(first, first + 2 * 60, 2))
        c.send(b"".join(frame(HEADERS, END_STREAM | END_HEADERS, sid, block) for sid in streams))
        for sid, (status, body) in c.responses(streams).items():
            verify(f"{what}, stream {sid}", status, body)
        print(f"{what}: 60 times 200")
        return first + 2 * 60

    c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block), pause)
    check(1, "whole request")
    # The connection has been idle for `pause`: its buffers are gone. Half a frame header, a
    # pause (lbd reads 5 bytes and waits with no stream open), then the rest.
    f = frame(HEADERS, END_STREAM | END_HEADERS, 3, block)
    c.send(f[:5], pause)
    c.send(f[5:])
    check(3, "request split inside its frame header")
    f = frame(HEADERS, END_STREAM | END_HEADERS, 5, block)
    c.send(f[:12], pause)
    c.send(f[12:])
    check(5, "request split inside its header block")
    # A header block over two frames, with a pause between them.
    c.send(frame(HEADERS, END_STREAM, 7, block[:3]), pause)
    c.send(frame(CONTINUATION, END_HEADERS, 7, block[3:]))
    check(7, "header block continued after a pause")
    time.sleep(pause)
    # Bursts of 60 streams at once; between them the connection waits with none open.
    nxt = burst(9, "first burst of 60")
    time.sleep(pause)
    nxt = burst(nxt, "second burst of 60, after a pause")
    time.sleep(pause)
    c.send(frame(HEADERS, END_STREAM | END_HEADERS, nxt, block))
    check(nxt, "one request after the bursts")
    print("ok")


if __name__ == "__main__":
    main()
