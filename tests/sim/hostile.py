#!/usr/bin/env python3
"""Throw malformed and hostile HTTP at a running simulator.

Usage: hostile.py PORT.  Each case sends raw bytes on its own connection and
reads whatever comes back (or nothing); after every case the simulator must
still answer GET /_sim/counters with 200.  Prints one line per case and
exits 1 if the simulator stopped answering or an expectation failed.
"""
import socket
import sys
import time

PORT = int(sys.argv[1])
failures = 0


def raw(data, read=True, timeout=5.0, half_close=False):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    try:
        for chunk in data if isinstance(data, list) else [data]:
            s.sendall(chunk)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        if not read:
            return b""
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not b:
                break
            out += b
        return out
    except (BrokenPipeError, ConnectionResetError):
        return b""
    finally:
        s.close()


def alive():
    out = raw(b"GET /_sim/counters HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return out.startswith(b"HTTP/1.1 200")


def case(name, data, expect=None, **kw):
    global failures
    try:
        out = raw(data, **kw)
    except OSError as e:
        out = ("<%s>" % e).encode()
    status = out.split(b"\r\n", 1)[0].decode("latin-1")
    ok = alive()
    if expect is not None and expect not in out:
        ok = False
    print("%s - %s: %s" % ("ok  " if ok else "FAIL", name, status or "(no answer)"))
    if not ok:
        failures += 1
        if expect is not None:
            print("  expected %r in %r" % (expect, out[:300]))


H = b"Host: 127.0.0.1\r\nConnection: close\r\n"
case("garbage request line", b"\x00\x01\x02 garbage\r\n\r\n")
case("no HTTP version", b"GET /m2/demo/profile/update\r\n\r\n")
case("header of 300 KB", b"GET /_sim/counters HTTP/1.1\r\n" + H + b"X: " + b"a" * 300000 + b"\r\n\r\n")
case("request target of 150 KB", b"GET /m2/demo/profile/update?" + b"a" * 150000 + b" HTTP/1.1\r\n" + H + b"\r\n")
# MHD itself gives up on a query whose parsed arguments exceed the 128 KB
# per-connection memory: it closes the connection; the simulator must live on
case("query of 7,000 empty params", b"GET /m2/demo/profile/update?mbox3rdPartyId=p1&" + b"&" * 7000 + b" HTTP/1.1\r\n" + H + b"\r\n")
case("query of 2,000 params", b"GET /m2/demo/profile/update?mbox3rdPartyId=p1" + b"&profile.a=1" * 600 + b" HTTP/1.1\r\n" + H + b"\r\n",
     expect=b"Profile not found")
case("bad escapes in path", b"GET /m2/%zz%/profile/update?mbox3rdPartyId=%%%&profile.%=%G HTTP/1.1\r\n" + H + b"\r\n",
     expect=b"HTTP/1.1 400")
case("NUL in ids", b"GET /m2/demo/profile/update?mbox3rdPartyId=a%00b&profile.a%00=%00 HTTP/1.1\r\n" + H + b"\r\n",
     expect=b"Profile not found")
case("NUL in fetch path", b"GET /rest/v1/profiles/thirdPartyId/%00%ff?client=demo HTTP/1.1\r\n" + H + b"\r\n",
     expect=b"HTTP/1.1 404")
case("fetch id with a slash", b"GET /rest/v1/profiles/thirdPartyId/a/b?client=demo HTTP/1.1\r\n" + H + b"\r\n",
     expect=b"HTTP/1.1 404")
case("client code of 10 KB", b"GET /m2/" + b"c" * 10000 + b"/profile/update?mbox3rdPartyId=p HTTP/1.1\r\n" + H + b"\r\n",
     expect=b"HTTP/1.1 400")
body = b"batch=thirdPartyId,a\nu1,1\n"
case("chunked batch, 1-byte chunks",
     b"POST /m2/demo/v2/profile/batchUpdate HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     + b"".join(b"1\r\n" + bytes([c]) + b"\r\n" for c in body) + b"0\r\n\r\n", expect=b"<success>true</success>")
case("bad chunk size", b"POST /m2/demo/v2/profile/batchUpdate HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
case("Content-Length lies (short body, half close)",
     b"POST /m2/demo/v2/profile/batchUpdate HTTP/1.1\r\n" + H + b"Content-Length: 1000000\r\n\r\nbatch=thirdPartyId,a\n", half_close=True)
case("Content-Length huge", b"POST /m2/demo/v2/profile/batchUpdate HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999\r\n\r\nbatch=", half_close=True)
case("negative Content-Length", b"POST /m2/demo/v2/profile/batchUpdate HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\nbatch=")
case("abandoned upload", b"POST /m2/demo/v2/profile/batchUpdate HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\nbatch=thirdPartyId,a\nu", read=False)
case("Expect: 100-continue", [b"POST /m2/demo/v2/profile/batchUpdate HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body), body],
     expect=b"<success>true</success>")
case("pipelined requests",
     (b"GET /m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=1 HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
     + b"GET /_sim/counters HTTP/1.1\r\n" + H + b"\r\n", expect=b"rows_applied")
case("control body over 64 KB", b"POST /_sim/faults HTTP/1.1\r\n" + H + b"Content-Length: 70000\r\n\r\n" + b"x" * 70000,
     expect=b"body too large")
case("settings with NUL", b"POST /_sim/faults HTTP/1.1\r\n" + H + b"Content-Length: 17\r\n\r\nerror_rate=0%00.5", expect=b"HTTP/1.1 400")
case("batch of random bytes", b"POST /m2/demo/v2/profile/batchUpdate HTTP/1.1\r\n" + H + b"Content-Length: 4096\r\n\r\n" + bytes((i * 7919 + 13) % 256 for i in range(4096)),
     expect=b"HTTP/1.1 400")
weird = b"batch=thirdPartyId,%,%%,%zz,\xff\xfe\n\xc3\x28,%00,,,,,,,,,\n%2B,1\n/,1\n" + b"x" * 300 + b",1\n\r\n\r\r\r\n"
case("batch with hostile cells", b"POST /m2/demo/v2/profile/batchUpdate HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(weird) + weird,
     expect=b"<success>true</success>")
case("unknown method", b"BREW /m2/demo/profile/update HTTP/1.1\r\n" + H + b"\r\n")
case("HTTP/1.0 without Host", b"GET /m2/demo/profile/update?mbox3rdPartyId=p1 HTTP/1.0\r\n\r\n", expect=b"Profile not found")
case("absolute-form target", b"GET http://127.0.0.1/m2/demo/profile/update?mbox3rdPartyId=p1 HTTP/1.1\r\n" + H + b"\r\n")
# many connections opened and dropped at once
socks = []
for _ in range(200):
    try:
        socks.append(socket.create_connection(("127.0.0.1", PORT), timeout=5))
    except OSError:
        break
for s in socks:
    try:
        s.sendall(b"POST /m2/demo/v2/profile/batchUpdate HTTP/1.1\r\nContent-Length: 100\r\n\r\nbatch=")
    except OSError:
        pass
    s.close()
time.sleep(0.2)
print("%s - 200 abandoned connections" % ("ok  " if alive() else "FAIL"))
failures += 0 if alive() else 1
print("# hostile cases done, %d failed" % failures)
sys.exit(1 if failures else 0)
