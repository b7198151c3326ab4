#!/usr/bin/env python3
"""An HTTP/1.1 origin that writes its responses byte by byte as told, to test how lbd's upstream
client frames what real servers may send. Keep-alive connections are closed silently once idle
for --idle seconds (a backend keep-alive timeout), and every request is counted per connection.

  /cl            -> 200 with Content-Length (body "cl\\n"; empty for HEAD)
  /close         -> 200 without length or chunking: the body ends when the connection closes
  /chunked       -> 200 chunked, with a chunk extension and a trailer
  /info          -> 103 Early Hints, then 200 "info\\n"
  /garbage       -> a malformed status line
  /truncated     -> Content-Length: 100, 10 bytes, then close
  /conn          -> "<connection number> <requests on it>\\n" (Content-Length)
  /reject        -> 413 at once, without reading the request body; the connection then stays
                    open, unread, for 5 s (a backend refusing an upload early)
  /target...     -> the request-target as it arrived (so absolute-form shows), and a newline
  /hop           -> 200 "hop\\n" with every hop-by-hop header, a repeated header in mixed case
                    and a fixed Date
  /named         -> 200 "named\\n" with a header that its Connection names (X-Hop)
Request bodies (Content-Length or chunked) are read and their length is echoed in X-Got.
"""
import argparse
import asyncio
import itertools

COUNTER = itertools.count(1)


async def read_body(reader, headers):
    if headers.get("transfer-encoding", "").lower().endswith("chunked"):
        total = 0
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readline()).strip():
                    pass
                return total
            total += len(await reader.readexactly(size))
            await reader.readexactly(2)
    n = int(headers.get("content-length", "0"))
    await reader.readexactly(n)
    return n


def simple(body, extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def serve(reader, writer, idle):
    conn = next(COUNTER)
    served = 0
    try:
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), idle)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            if path == "/reject":
                writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo big!\n")
                await writer.drain()
                await asyncio.sleep(5)
                return
            got = await read_body(reader, headers)
            served += 1
            extra = b"X-Got: %d\r\n" % got
            if path == "/cl":
                body = b"" if method == "HEAD" else b"cl\n"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n%s\r\n%s" % (extra, body))
            elif path == "/close":
                writer.write(b"HTTP/1.1 200 OK\r\n%s\r\nclose-delimited body\n" % extra)
                await writer.drain()
                return
            elif path == "/chunked":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n%s\r\n" % extra)
                writer.write(b"6;ext=1\r\nhello \r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.write(b"6\r\nworld\n\r\n0\r\nX-Trailer: t\r\n\r\n")
            elif path == "/info":
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
                await writer.drain()
                writer.write(simple(b"info\n", extra))
            elif path == "/garbage":
                writer.write(b"HTTP/1.1 two hundred\r\n\r\n")
                await writer.drain()
                return
            elif "/target" in path:
                writer.write(simple(path.encode() + b"\n", extra))
            elif path == "/hop":
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\n"
                    b"Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n"
                    b"X-Mixed-Case: One\r\nx-mixed-case: Two\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\n%s\r\nhop\n" % extra
                )
            elif path == "/named":
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: secret\r\nContent-Length: 6\r\n%s\r\nnamed\n" % extra)
            elif path == "/truncated":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                await writer.drain()
                return
            else:
                writer.write(simple(b"%d %d\n" % (conn, served), extra))
            await writer.drain()
    finally:
        writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--idle", type=float, default=0.05)
    a = p.parse_args()
    server = await asyncio.start_server(lambda r, w: serve(r, w, a.idle), "127.0.0.1", a.port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
