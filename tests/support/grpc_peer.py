#!/usr/bin/env python3
"""gRPC peers for lbd's tests (grpcio, no generated code: raw-bytes methods).

  grpc_peer.py server --port P [--unhealthy-file F] [--cancelled-file C]
      grpc.health.v1.Health/Check -> SERVING, or NOT_SERVING while F exists
      lbd.test.Echo/Unary   -> b"echo:" + request
      lbd.test.Echo/Stream  -> 5 messages b"part-0" .. b"part-4"
      lbd.test.Echo/Fail    -> aborts with NOT_FOUND "nothing here"
      lbd.test.Echo/Hang    -> answers after 10 s, unless the call is cancelled first: then
                               writes "cancelled" to C
  grpc_peer.py client --target HOST:PORT --ca CERT --name SNI [--dead | --cancel]
      prints one line per check; exits non-zero on any mismatch
      --cancel: starts Hang, cancels it (RST_STREAM) after 0.3 s, then calls Unary on the same
      connection
"""
import argparse
import sys
import threading
import time
from concurrent import futures

import grpc

ident = lambda b: b


def serve(port, health_file, cancelled_file):
    import os

    def check(request, context):
        # HealthCheckResponse: status = 1 (SERVING), or 2 (NOT_SERVING) while health_file exists.
        return b"\x08\x02" if health_file and os.path.exists(health_file) else b"\x08\x01"

    def unary(request, context):
        return b"echo:" + request

    def stream(request, context):
        for i in range(5):
            yield b"part-%d" % i

    def fail(request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "nothing here")

    def hang(request, context):
        done = threading.Event()
        context.add_callback(done.set)
        done.wait(10)
        if not context.is_active() and cancelled_file:
            with open(cancelled_file, "w") as f:
                f.write("cancelled")
        return b"late"

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, request_deserializer=ident, response_serializer=ident),
        "Stream": grpc.unary_stream_rpc_method_handler(stream, request_deserializer=ident, response_serializer=ident),
        "Fail": grpc.unary_unary_rpc_method_handler(fail, request_deserializer=ident, response_serializer=ident),
        "Hang": grpc.unary_unary_rpc_method_handler(hang, request_deserializer=ident, response_serializer=ident),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    health = {"Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=ident, response_serializer=ident)}
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler("lbd.test.Echo", handlers),
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", health),
        )
    )
    server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    server.wait_for_termination()


def client(target, ca, name, dead, cancel):
    creds = grpc.ssl_channel_credentials(root_certificates=open(ca, "rb").read())
    ch = grpc.secure_channel(target, creds, options=(("grpc.ssl_target_name_override", name),))
    call = lambda m: ch.unary_unary(m, request_serializer=ident, response_deserializer=ident)
    if cancel:
        # No deadline: the server learns of the end only through the stream's reset.
        pending = call("/lbd.test.Echo/Hang").future(b"x")
        time.sleep(0.3)
        pending.cancel()
        print("hang: cancelled" if pending.cancelled() else "hang: not cancelled")
        r = call("/lbd.test.Echo/Unary")(b"after", timeout=10)
        print("unary:", r.decode())
        return 0 if pending.cancelled() and r == b"echo:after" else 1
    if dead:
        try:
            call("/dead.Service/Call")(b"x", timeout=10)
            print("dead: unexpected success")
            return 1
        except grpc.RpcError as e:
            print("dead:", e.code().name)
            return 0 if e.code() == grpc.StatusCode.UNAVAILABLE else 1
    ok = True
    r = call("/lbd.test.Echo/Unary")(b"hello", timeout=10)
    print("unary:", r.decode())
    ok &= r == b"echo:hello"
    parts = list(ch.unary_stream("/lbd.test.Echo/Stream", request_serializer=ident, response_deserializer=ident)(b"", timeout=10))
    print("stream:", ",".join(p.decode() for p in parts))
    ok &= parts == [b"part-%d" % i for i in range(5)]
    try:
        call("/lbd.test.Echo/Fail")(b"", timeout=10)
        print("fail: unexpected success")
        ok = False
    except grpc.RpcError as e:
        print("fail:", e.code().name, e.details())
        ok &= e.code() == grpc.StatusCode.NOT_FOUND and e.details() == "nothing here"
    return 0 if ok else 1


p = argparse.ArgumentParser()
p.add_argument("mode")
p.add_argument("--port", type=int)
p.add_argument("--target")
p.add_argument("--ca")
p.add_argument("--name")
p.add_argument("--dead", action="store_true")
p.add_argument("--cancel", action="store_true")
p.add_argument("--unhealthy-file")
p.add_argument("--cancelled-file")
a = p.parse_args()
if a.mode == "server":
    serve(a.port, a.unhealthy_file, a.cancelled_file)
else:
    sys.exit(client(a.target, a.ca, a.name, a.dead, a.cancel))
