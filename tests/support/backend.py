#!/usr/bin/env python3
"""A real origin server for lbd's integration tests (aiohttp: HTTP/1.1 keep-alive and WebSocket).

Every response names the backend (body line and X-Backend header), so tests can see where the
balancer sent each request.

  /              -> "<name>\n"
  /headers       -> request headers as JSON (repeated ones joined with ", ")
  /slow?ms=N     -> waits N ms, then "<name>\n"
  /status/N      -> status N
  /big?bytes=N   -> N bytes streamed in 64 KiB chunks (byte i = i % 251)
  /upload (POST) -> sha256 and length of the streamed request body
  /healthz       -> 200, or 503 with --unhealthy
  /ws            -> WebSocket echo
--fail makes every path except /healthz answer 500.
"""
import argparse
import asyncio
import hashlib
import json

from aiohttp import web, WSMsgType


PATTERN = bytes(i % 251 for i in range(65536 + 251))


def make_app(name, fail, unhealthy):
    def hdr(resp):
        resp.headers["X-Backend"] = name
        return resp

    async def healthz(request):
        return hdr(web.Response(status=503 if unhealthy else 200, text="unhealthy\n" if unhealthy else "ok\n"))

    async def ws(request):
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                await sock.send_str(f"{name}:{msg.data}")
            elif msg.type == WSMsgType.BINARY:
                await sock.send_bytes(msg.data)
        return sock

    async def anything(request):
        if fail:
            return hdr(web.Response(status=500, text=f"{name} failing\n"))
        path = request.path
        if path == "/headers":
            # Repeated fields joined with ", ", as a recipient may combine them (RFC 9110 §5.3).
            seen = {}
            for k, v in request.headers.items():
                k = k.lower()
                seen[k] = f"{seen[k]}, {v}" if k in seen else v
            return hdr(web.json_response(seen))
        if path == "/slow":
            await asyncio.sleep(int(request.query.get("ms", "1000")) / 1000)
            return hdr(web.Response(text=f"{name}\n"))
        if path.startswith("/status/"):
            return hdr(web.Response(status=int(path.split("/")[2]), text=f"{name}\n"))
        if path == "/big":
            n = int(request.query.get("bytes", "1048576"))
            resp = hdr(web.StreamResponse())
            resp.content_length = n
            await resp.prepare(request)
            sent = 0
            while sent < n:
                m = min(65536, n - sent)
                off = sent % 251  # the pattern continues across chunks
                await resp.write(PATTERN[off : off + m])
                sent += m
            await resp.write_eof()
            return resp
        if path == "/upload":
            h = hashlib.sha256()
            total = 0
            async for chunk in request.content.iter_chunked(65536):
                h.update(chunk)
                total += len(chunk)
            return hdr(web.json_response({"sha256": h.hexdigest(), "bytes": total}))
        return hdr(web.Response(text=f"{name}\n"))

    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/ws", ws)
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--fail", action="store_true")
    p.add_argument("--unhealthy", action="store_true")
    a = p.parse_args()
    web.run_app(make_app(a.name, a.fail, a.unhealthy), host="127.0.0.1", port=a.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
