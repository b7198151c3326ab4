#!/usr/bin/env python3
"""WebSocket client for the integration tests: sends N text messages and one binary message,
prints each echo on its own line. Exits non-zero on any mismatch."""
import asyncio
import sys

import aiohttp


async def main(url, n):
    ssl = False if url.startswith("wss://") else None  # self-signed test certificates
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url, timeout=10, ssl=ssl) as ws:
            for i in range(n):
                await ws.send_str(f"msg{i}")
                reply = await ws.receive(timeout=10)
                print(reply.data, flush=True)
            blob = bytes(range(256)) * 1024
            await ws.send_bytes(blob)
            reply = await ws.receive(timeout=10)
            if reply.data != blob:
                print("binary echo mismatch", file=sys.stderr)
                sys.exit(1)
            print("binary ok", flush=True)


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
