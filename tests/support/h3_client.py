#!/usr/bin/env python3
"""An HTTP/3 client on aioquic (an independent QUIC stack) for lbd's tests.

  h3_client.py PORT PATH [PATH ...] [--rebind N] [--post-bytes N] [--post-path P] [--pause S]
               [--parallel] [--new-cid]

Opens one QUIC connection to 127.0.0.1:PORT (SNI "localhost", certificate not verified) and
requests each PATH in turn. With --rebind N it then, N times, moves the connection to a fresh
local UDP port (a NAT rebinding; --new-cid also switches to a new connection ID, a client
migration) and requests the first PATH again on the same connection. With --post-bytes N every
request is a POST of N bytes, or with --post-path P only the requests for P. With --pause S the
client waits S seconds, its connection idle, before each PATH written with a leading "~" (the "~"
is not sent). With --parallel the PATHs from one "~PATH" to the next are requested all at once,
each on its own stream (a page load), and printed in order. With --zero-rtt a first connection
gets a session ticket and a second one sends every PATH at once as 0-RTT early data. With
--goaway the client requests every PATH at once, sends its own GOAWAY (RFC 9114 §5.2) 0.2 s later,
prints the responses, and then waits up to 3 s for the server's GOAWAY frames and prints
{"server_goaway": [ids]} (aioquic itself discards them, so the server's control stream is read
here). --show-goaway prints that last line after the responses of any other run.
Prints one JSON line per response:
{"status": .., "headers": {..}, "body": "..", "port": local_port} (a repeated field's values joined
with ", "). Exits 1 on any failure.
"""
import argparse
import asyncio
import json
import socket
import ssl
import sys

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import Buffer, BufferReadError
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection, StreamType, encode_frame
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamDataReceived


class Client(QuicConnectionProtocol):
    extra_headers = []  # (name, value) pairs added to each request (--header)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.pending = {}
        self.server_uni = {}  # server-initiated unidirectional stream id -> bytes so far

    def server_goaways(self):
        """The stream IDs of the GOAWAY frames on the server's control stream so far."""
        ids = []
        for data in self.server_uni.values():
            buf = Buffer(data=data)
            try:
                if buf.pull_uint_var() != StreamType.CONTROL:
                    continue
                while not buf.eof():
                    frame_type, length = buf.pull_uint_var(), buf.pull_uint_var()
                    payload = buf.pull_bytes(length)
                    if frame_type == FrameType.GOAWAY:
                        ids.append(Buffer(data=payload).pull_uint_var())
            except BufferReadError:
                pass  # a frame not whole yet
        return ids

    def send_goaway(self, push_id=0):
        """A client's GOAWAY, on its control stream (aioquic has no call for it)."""
        varint = Buffer(capacity=8)
        varint.push_uint_var(push_id)
        self._quic.send_stream_data(self.h3._local_control_stream_id, encode_frame(FrameType.GOAWAY, varint.data))
        self.transmit()

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived) and event.stream_id % 4 == 3:
            self.server_uni[event.stream_id] = self.server_uni.get(event.stream_id, b"") + event.data
        for ev in self.h3.handle_event(event):
            entry = self.pending.get(getattr(ev, "stream_id", None))
            if entry is None:
                continue
            if isinstance(ev, HeadersReceived):
                entry["headers"].extend(ev.headers)
            elif isinstance(ev, DataReceived):
                entry["body"] += ev.data
            if getattr(ev, "stream_ended", False) and not entry["done"].done():
                entry["done"].set_result(True)

    async def request(self, method, path, body=b""):
        sid = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
            (b"user-agent", b"aioquic-test"),
        ] + self.extra_headers
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        entry = {"headers": [], "body": b"", "done": asyncio.get_running_loop().create_future()}
        self.pending[sid] = entry
        self.h3.send_headers(sid, headers, end_stream=not body)
        if body:
            self.h3.send_data(sid, body, end_stream=True)
        self.transmit()
        await asyncio.wait_for(entry["done"], 10)
        # A repeated field's values joined with ", " in order (as HTTP allows).
        hdrs = {}
        for k, v in entry["headers"]:
            k, v = k.decode(), v.decode()
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        return int(hdrs.pop(":status")), hdrs, entry["body"]

    async def rebind(self, new_cid):
        loop = asyncio.get_running_loop()
        old = self._transport
        # Like aioquic's connect(): a dual-stack IPv6 socket (the peer address is v4-mapped).
        # A port never used before on this connection: the kernel may hand out a port again
        # once its socket is closed, so ports seen before are held (bound, unused) until exit.
        used = getattr(self, "_used_ports", None)
        if used is None:
            used = self._used_ports = {old.get_extra_info("sockname")[1]}
            self._held = []
        while True:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::", 0, 0, 0))
            port = sock.getsockname()[1]
            if port not in used:
                break
            self._held.append(sock)
        used.add(port)
        await loop.create_datagram_endpoint(lambda: self, sock=sock)
        old.close()
        if new_cid:
            self.change_connection_id()
        self.transmit()


async def main():
    a = args()
    await asyncio.wait_for(run(a), a.deadline)


def args():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("paths", nargs="+")
    p.add_argument("--rebind", type=int, default=0)
    p.add_argument("--new-cid", action="store_true")
    p.add_argument("--post-bytes", type=int, default=0)
    p.add_argument("--post-path", default=None, help="only requests for this path are POSTs")
    p.add_argument("--pause", type=float, default=0, help="idle seconds before each ~PATH")
    p.add_argument("--parallel", action="store_true", help="request each group of PATHs at once")
    p.add_argument("--zero-rtt", action="store_true")
    p.add_argument("--goaway", action="store_true", help="send a GOAWAY with the requests in flight")
    p.add_argument("--show-goaway", action="store_true", help="print the server's GOAWAY ids at the end")
    p.add_argument("--deadline", type=float, default=60, help="seconds for the whole run")
    p.add_argument("--cert", default=None, help="client certificate (PEM) to present, with --key")
    p.add_argument("--key", default=None)
    p.add_argument("--header", action="append", default=[], help="'NAME: VALUE' to add to each request")
    return p.parse_args()


async def run(a):
    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="localhost")
    cfg.verify_mode = ssl.CERT_NONE
    if a.cert:
        cfg.load_cert_chain(a.cert, a.key)
    Client.extra_headers = [(n.strip().lower().encode(), v.strip().encode()) for n, v in (h.split(":", 1) for h in a.header)]
    body = bytes(i % 251 for i in range(a.post_bytes))
    method = "POST" if a.post_bytes else "GET"

    async def fetch(client, path):
        if a.post_path is None:
            return await client.request(method, path, body)
        if path == a.post_path:
            return await client.request("POST", path, body)
        return await client.request("GET", path, b"")

    def show(client, status, hdrs, data):
        port = client._transport.get_extra_info("sockname")[1]
        # The connection ID the server chose for itself (the one this client sends to).
        cid = client._quic._peer_cid.cid.hex()
        print(json.dumps({"status": status, "headers": hdrs, "body": data.decode("latin-1"), "port": port, "server_cid": cid}), flush=True)

    async def group(client, paths):
        if paths[0].startswith("~"):
            await asyncio.sleep(a.pause)
        results = await asyncio.gather(*(fetch(client, p.lstrip("~")) for p in paths))
        for status, hdrs, data in results:
            show(client, status, hdrs, data)

    async def one(client, path):
        await group(client, [path])

    async def show_goaways(client):
        for _ in range(30):
            if client.server_goaways():
                break
            await asyncio.sleep(0.1)
        print(json.dumps({"server_goaway": client.server_goaways()}), flush=True)

    if a.zero_rtt:
        # A first connection for a session ticket; the requests then go as 0-RTT early data on a
        # resumed connection (sent before the handshake completes).
        tickets = []
        async with connect(
            "127.0.0.1", a.port, configuration=cfg, create_protocol=Client, session_ticket_handler=tickets.append
        ) as client:
            await client.request("GET", "/", b"")
            await asyncio.sleep(0.2)
        if not tickets:
            raise RuntimeError("no session ticket")
        cfg.session_ticket = tickets[-1]
        async with connect("127.0.0.1", a.port, configuration=cfg, create_protocol=Client, wait_connected=False) as client:
            results = await asyncio.gather(*(client.request(method, path, body) for path in a.paths))
            early = client._quic.tls.early_data_accepted
            for status, hdrs, data in results:
                print(json.dumps({"status": status, "headers": hdrs, "body": data.decode("latin-1"), "early_data_accepted": early}), flush=True)
        return
    if a.goaway:
        async with connect("127.0.0.1", a.port, configuration=cfg, create_protocol=Client) as client:
            requests = asyncio.gather(*(fetch(client, p) for p in a.paths))
            await asyncio.sleep(0.2)
            client.send_goaway()
            for status, hdrs, data in await requests:
                show(client, status, hdrs, data)
            await show_goaways(client)
        return
    async with connect("127.0.0.1", a.port, configuration=cfg, create_protocol=Client) as client:
        # One path per group, or with --parallel a group from each "~PATH" to the next.
        groups = []
        for path in a.paths:
            if not a.parallel or not groups or path.startswith("~"):
                groups.append([])
            groups[-1].append(path)
        for paths in groups:
            await group(client, paths)
        for _ in range(a.rebind):
            await client.rebind(a.new_cid)
            await one(client, a.paths[0])
        if a.show_goaway:
            await show_goaways(client)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - any failure is the test's failure
        print(f"h3_client: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
