#!/usr/bin/env python3
"""Backend that expects a PROXY protocol header (v1 or v2) before an HTTP/1.1 request and answers
with the source address the header carried: "v1 IP:PORT" or "v2 IP:PORT" ("none" without one)."""
import argparse
import socket
import threading

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def recv_until(c, data, pred):
    while not pred(data):
        chunk = c.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def handle(c):
    try:
        c.settimeout(10)
        data = recv_until(c, b"", lambda d: len(d) >= 16 or b"\r\n" in d)
        src = "none"
        if data.startswith(V2_SIG):
            data = recv_until(c, data, lambda d: len(d) >= 16 and len(d) >= 16 + int.from_bytes(d[14:16], "big"))
            length = int.from_bytes(data[14:16], "big")
            hdr, data = data[: 16 + length], data[16 + length :]
            fam = hdr[13] >> 4
            if fam == 1:
                src = "v2 %s:%d" % (socket.inet_ntop(socket.AF_INET, hdr[16:20]), int.from_bytes(hdr[24:26], "big"))
            elif fam == 2:
                src = "v2 %s:%d" % (socket.inet_ntop(socket.AF_INET6, hdr[16:32]), int.from_bytes(hdr[48:50], "big"))
            else:
                src = "v2 local"
        elif data.startswith(b"PROXY "):
            data = recv_until(c, data, lambda d: b"\r\n" in d)
            line, data = data.split(b"\r\n", 1)
            parts = line.decode().split()
            src = "v1 %s:%s" % (parts[2], parts[4]) if len(parts) >= 6 else "v1 unknown"
        data = recv_until(c, data, lambda d: b"\r\n\r\n" in d)
        body = (src + "\n").encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    except Exception:
        pass
    finally:
        c.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", a.port))
    s.listen(128)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


main()
