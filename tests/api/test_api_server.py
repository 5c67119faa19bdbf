"""
Drive cord's client transport (src/api) with real clients: python3-grpcio,
curl (HTTP/1.1 and --http2-prior-knowledge) and raw sockets speaking HTTP/2
frames by hand for the bad-input cases.

The server under test is tests/api/api_echo_server.c; its binary comes from
$API_ECHO_SERVER (set by ctest). Every wait is bounded.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import grpc
import pytest

SERVER = os.environ.get("API_ECHO_SERVER")
IDENT = lambda b: b  # noqa: E731  raw bytes in, raw bytes out

if not SERVER:
    pytest.skip("API_ECHO_SERVER not set (run through ctest)", allow_module_level=True)


class Server:
    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [SERVER, "--listen", "http://127.0.0.1:0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("PORT "), line + self.proc.stderr.read().decode()
        self.port = int(line.split()[1])
        self.addr = f"127.0.0.1:{self.port}"

    def url(self, path):
        return f"http://{self.addr}{path}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError("server did not stop on SIGTERM: " + err.decode())
        err = err.decode()
        assert self.proc.returncode == 0, err
        assert "AddressSanitizer" not in err and "runtime error" not in err, err
        assert "clean exit" in err, err

    def alive(self):
        return self.proc.poll() is None


@pytest.fixture(scope="module")
def srv():
    s = Server("--idle-ms", "1000", "--max-pending", "4000000", "--max-streams", "100")
    yield s
    s.stop()


@pytest.fixture
def chan(srv):
    ch = grpc.insecure_channel(srv.addr)
    yield ch
    ch.close()


def unary(ch, path="/test.Echo/Unary"):
    return ch.unary_unary(path, request_serializer=IDENT, response_deserializer=IDENT)


def stats(srv):
    with urllib.request.urlopen(srv.url("/stats"), timeout=5) as r:
        return json.loads(r.read())


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def curl(*args, timeout=20):
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args],
                          capture_output=True, timeout=timeout)


# ---------------------------------------------------------------- raw HTTP/2

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 1, 4, 1


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def hpack_literal(name, value):
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def grpc_request_headers(path):
    return b"".join(hpack_literal(n, v) for n, v in [
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", path),
        (b":authority", b"localhost"), (b"content-type", b"application/grpc"),
        (b"te", b"trailers")])


def grpc_msg(body, compressed=0):
    return bytes([compressed]) + struct.pack(">I", len(body)) + body


def read_frames(sock, timeout=5.0, until=None):
    """Read frames until EOF, timeout, or until(frame) is true. Returns (frames, eof)."""
    sock.settimeout(0.2)
    buf, frames, eof = b"", [], False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            eof = True
            break
        if not chunk:
            eof = True
            break
        buf += chunk
        while len(buf) >= 9:
            ln = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + ln:
                break
            f = (buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + ln])
            buf = buf[9 + ln:]
            frames.append(f)
            if until and until(f):
                return frames, False
    return frames, eof


def h2_connect(srv, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", srv.port))
    return s


# ---------------------------------------------------------------- gRPC

def test_unary_echo(chan):
    assert unary(chan)(b"hello", timeout=5) == b"hello"
    assert unary(chan)(b"", timeout=5) == b""
    big = os.urandom(1_000_000)
    assert unary(chan)(big, timeout=10) == big


def test_server_stream(chan):
    call = chan.unary_stream("/test.Echo/ServerStream", request_serializer=IDENT,
                             response_deserializer=IDENT)
    msgs = list(call(b"7 100", timeout=5))
    assert [m.split(b":")[0] for m in msgs] == [str(i).encode() for i in range(7)]
    assert all(len(m) == 100 for m in msgs)


def test_server_stream_flow_control(chan):
    # 3.2 MB through a 64 KiB client window and 1 MiB messages split over frames
    call = chan.unary_stream("/test.Echo/ServerStream", request_serializer=IDENT,
                             response_deserializer=IDENT)
    msgs = list(call(b"3 1000000", timeout=20))
    assert len(msgs) == 3 and all(len(m) == 1000000 for m in msgs)
    msgs = list(call(b"2000 10", timeout=20))
    assert len(msgs) == 2000


def test_paced_stream_with_drain_callback(chan):
    # 20 MB produced only as fast as the client takes it: the handler refills
    # from the drain callback, so at most ~64 KiB + one message is queued
    call = chan.unary_stream("/test.Echo/Paced", request_serializer=IDENT,
                             response_deserializer=IDENT)
    n = 0
    for m in call(b"2000 10000", timeout=30):
        if m.startswith(b"maxq="):
            maxq = int(m[5:])
            break
        assert m.split(b":")[0] == str(n).encode() and len(m) == 10000
        n += 1
        if n % 500 == 0:
            time.sleep(0.05)  # a slow reader for a moment
    assert n == 2000
    assert maxq <= 64 * 1024 + 10005


def test_bidi_echo_until_half_close(chan):
    call = chan.stream_stream("/test.Echo/Bidi", request_serializer=IDENT,
                              response_deserializer=IDENT)
    reqs = [b"a", b"bb", os.urandom(200000), b""]
    assert list(call(iter(reqs), timeout=10)) == reqs


def test_bidi_interleaved(chan):
    # request/response ping-pong: each answer arrives before the next request is sent
    call = chan.stream_stream("/test.Echo/Bidi", request_serializer=IDENT,
                              response_deserializer=IDENT)
    cond = threading.Condition()
    got = []

    def gen():
        for i in range(20):
            yield b"m%d" % i
            with cond:
                cond.wait_for(lambda: len(got) > i, timeout=5)

    for m in call(gen(), timeout=20):
        with cond:
            got.append(m)
            cond.notify_all()
    assert got == [b"m%d" % i for i in range(20)]


def test_async_reply(chan):
    t0 = time.monotonic()
    assert unary(chan, "/test.Echo/Delayed")(b"200", timeout=5) == b"late"
    assert time.monotonic() - t0 >= 0.19


def test_request_metadata(chan):
    h = unary(chan, "/test.Echo/Header")
    md = (("hasleader", "true"), ("token", "abc"))
    assert h(b"hasleader", metadata=md, timeout=5) == b"true"
    assert h(b"Token", metadata=md, timeout=5) == b"abc"
    assert h(b"content-type", timeout=5) == b"application/grpc"
    assert h(b"nope", timeout=5) == b"<none>"
    assert h(b":path", timeout=5) == b"<none>"  # pseudo headers: see api_call_path


def test_unknown_method_and_service(chan):
    with pytest.raises(grpc.RpcError) as e:
        unary(chan, "/test.Echo/Nope")(b"x", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert e.value.details() == "unknown method Nope for service test.Echo"
    with pytest.raises(grpc.RpcError) as e:
        unary(chan, "/etcdserverpb.Lease/LeaseGrant")(b"x", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert e.value.details() == "unknown service etcdserverpb.Lease"


def test_error_status_and_message_encoding(chan):
    msg = "etcdserver: key not found \u043a\u043b\u044e\u0447 100% \t"
    with pytest.raises(grpc.RpcError) as e:
        unary(chan, "/test.Echo/Fail")(("5 " + msg).encode(), timeout=5)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert e.value.details() == msg


def test_request_too_large(chan):
    with pytest.raises(grpc.RpcError) as e:
        unary(chan)(b"x" * (2 * 1024 * 1024 + 1), timeout=10)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.value.details() == "etcdserver: request is too large"
    # exactly at the limit (1.5 MiB + 512 KiB) is fine; the channel still works
    ok = b"y" * (2 * 1024 * 1024)
    assert unary(chan)(ok, timeout=10) == ok


def test_too_large_mid_bidi_stream(chan):
    call = chan.stream_stream("/test.Echo/Bidi", request_serializer=IDENT,
                              response_deserializer=IDENT)
    it = call(iter([b"small", b"z" * (3 * 1024 * 1024)]), timeout=10)
    assert next(it) == b"small"
    with pytest.raises(grpc.RpcError) as e:
        next(it)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_compressed_message_unimplemented(chan):
    with pytest.raises(grpc.RpcError) as e:
        unary(chan)(b"a" * 1000, timeout=5, compression=grpc.Compression.Gzip)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_many_concurrent_unary(chan):
    u = unary(chan, "/test.Echo/Delayed")
    futs = [u.future(b"50", timeout=20) for _ in range(300)]  # > max streams (100)
    assert [f.result() for f in futs] == [b"late"] * 300
    e = unary(chan)
    futs = [e.future(b"%d" % i, timeout=20) for i in range(500)]
    assert [f.result() for f in futs] == [b"%d" % i for i in range(500)]


def test_many_channels_in_parallel(srv):
    errors = []

    def worker(n):
        try:
            with grpc.insecure_channel(srv.addr) as ch:
                for i in range(20):
                    assert unary(ch)(b"%d-%d" % (n, i), timeout=10) == b"%d-%d" % (n, i)
        except Exception as ex:  # noqa: BLE001
            errors.append(ex)

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not errors


def test_cancel_streaming_call_runs_on_close(srv, chan):
    wait_for(lambda: stats(srv)["live_calls"] == 0, what="no live calls")
    call = chan.unary_stream("/test.Echo/Ticker", request_serializer=IDENT,
                             response_deserializer=IDENT)
    it = call(b"", timeout=10)
    assert next(it) == b"tick 0"
    assert next(it) == b"tick 1"
    assert stats(srv)["live_calls"] == 1
    it.cancel()
    wait_for(lambda: stats(srv)["live_calls"] == 0, what="on_close after cancel")


def test_deadline_exceeded_runs_on_close(srv, chan):
    with pytest.raises(grpc.RpcError) as e:
        unary(chan, "/test.Echo/Delayed")(b"2000", timeout=0.2)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: stats(srv)["live_calls"] == 0, what="on_close after deadline")


# ---------------------------------------------------------------- curl, HTTP/2

def test_curl_http2_prior_knowledge_grpc_frame(srv, tmp_path):
    req = tmp_path / "req.bin"
    req.write_bytes(grpc_msg(b"hello"))
    hdrs = tmp_path / "hdrs.txt"
    out = curl("--http2-prior-knowledge", "-D", str(hdrs), "-H", "content-type: application/grpc",
               "-H", "te: trailers", "--data-binary", "@" + str(req),
               srv.url("/test.Echo/Unary"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == grpc_msg(b"hello")
    h = hdrs.read_text().lower()
    assert h.startswith("http/2 200")
    assert "content-type: application/grpc" in h and "grpc-status: 0" in h


def test_curl_http2_messages_split_and_batched(srv, tmp_path):
    # several messages in one body for the bidi method, the body split over
    # DATA frames as curl chooses; every message comes back in order
    msgs = [os.urandom(n) for n in (0, 1, 5, 70000, 3)]
    req = tmp_path / "req.bin"
    req.write_bytes(b"".join(grpc_msg(m) for m in msgs))
    out = curl("--http2-prior-knowledge", "-H", "content-type: application/grpc",
               "--data-binary", "@" + str(req), srv.url("/test.Echo/Bidi"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"".join(grpc_msg(m) for m in msgs)


def test_curl_http2_unknown_method_trailers_only(srv):
    # No body: HEADERS carry END_STREAM. (With a body, curl 7.88 waits for its
    # --max-time when the trailers-only answer overtakes its upload, and
    # reports an error if an RST_STREAM(NO_ERROR) follows; the server is right
    # either way, RFC 7540 8.1.)
    out = curl("--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", "-X", "POST",
               "-H", "content-type: application/grpc", srv.url("/test.Echo/Missing"))
    h = out.stdout.decode().lower()
    assert "grpc-status: 12" in h, out
    assert "grpc-message: unknown method missing for service test.echo" in h


def test_http2_not_grpc(srv):
    out = curl("--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", "-X", "POST",
               "-H", "content-type: text/plain", srv.url("/test.Echo/Unary"))
    assert out.stdout.decode().lower().startswith("http/2 415")


# ---------------------------------------------------------------- HTTP/1.1

def test_http1_routes(srv):
    out = curl("-i", srv.url("/health"))
    assert out.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.stdout.endswith(b'{"health":"true"}')
    out = curl("-i", srv.url("/nope"))
    assert out.stdout.startswith(b"HTTP/1.1 404")
    out = curl("-i", "-X", "POST", srv.url("/health"))
    assert out.stdout.startswith(b"HTTP/1.1 405")
    out = curl("-X", "POST", "-H", "content-type: application/json", "--data-binary",
               '{"key":"Zm9v"}', srv.url("/echo"))
    assert out.stdout == b'{"key":"Zm9v"}'
    out = curl("-i", "--data-binary", "abc", srv.url("/echo"))
    assert b"\r\nX-Echo-Length: 3\r\n" in out.stdout and b"Injected" not in out.stdout


def test_http1_keepalive_reuses_connection(srv):
    out = curl("-v", srv.url("/health"), srv.url("/health?x=1"), srv.url("/slow"))
    err = out.stderr.decode()
    assert out.stdout == b'{"health":"true"}' * 2 + b"slow\n"
    assert "Re-using existing connection" in err or "Reusing existing connection" in err


def test_http1_pipelined_and_http10(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
              b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
              b"GET /health HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert b"\r\n\r\nabc" in data
    assert data.endswith(b'{"health":"true"}')  # closed after the HTTP/1.0 answer


def test_http1_chunked_stream(srv):
    out = curl("-N", "-i", srv.url("/stream?n=4"))
    assert b"Transfer-Encoding: chunked" in out.stdout
    assert out.stdout.endswith(b"chunk 0\nchunk 1\nchunk 2\nchunk 3\n")


def test_http1_stream_client_leaves(srv):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"GET /stream?n=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    s.close()  # the close callback ends the stream on the server side
    assert curl(srv.url("/health")).stdout == b'{"health":"true"}'


def test_http1_limits(srv, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * (2 * 1024 * 1024 + 10))
    out = curl("-i", "--data-binary", "@" + str(big), srv.url("/echo"))
    assert out.stdout.startswith(b"HTTP/1.1 413"), out.stdout[:200]
    out = curl("-i", "-H", "X-Big: " + "a" * 20000, srv.url("/health"))
    assert out.stdout.startswith(b"HTTP/1.1 431"), out.stdout[:200]
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"HELLO\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 400")
    s.close()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 501")
    s.close()


def test_http1_expect_continue(srv, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"q" * 1500000)
    out = curl("-H", "Expect: 100-continue", "--data-binary", "@" + str(body), srv.url("/echo"))
    assert out.stdout == b"q" * 1500000


# ---------------------------------------------------------------- bad input

def test_garbage_after_preface_closes_only_that_connection(srv, chan):
    s = h2_connect(srv)
    s.sendall(PREFACE + b"\xff" * 64)
    frames, eof = read_frames(s, timeout=5)
    s.close()
    assert eof
    assert any(f[0] == GOAWAY for f in frames)
    assert unary(chan)(b"still here", timeout=5) == b"still here"


def test_malformed_frames(srv, chan):
    cases = [
        frame(SETTINGS, 0, 0, b"\x00"),                        # bad SETTINGS length
        frame(SETTINGS, 0, 0) + frame(DATA, 0, 0, b"x"),       # DATA on stream 0
        frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, 2, b"\x82"),  # even stream id
        frame(SETTINGS, 0, 0) + frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x00"),
        frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, 1, b"\xff\xff\xff\xff"),  # bad HPACK
        frame(SETTINGS, 0, 0) + frame(PING, 0, 0, b"short"),
    ]
    for c in cases:
        s = h2_connect(srv)
        s.sendall(PREFACE + c)
        frames, eof = read_frames(s, timeout=5)
        s.close()
        assert eof, c
        assert any(f[0] == GOAWAY for f in frames), c
    assert unary(chan)(b"ok", timeout=5) == b"ok"


def test_raw_grpc_call_and_bad_stream_framing(srv):
    s = h2_connect(srv)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0)
              + frame(HEADERS, END_HEADERS, 1, grpc_request_headers(b"/test.Echo/Unary"))
              + frame(DATA, 0, 1, grpc_msg(b"raw")[:3])       # message split over frames
              + frame(DATA, END_STREAM, 1, grpc_msg(b"raw")[3:])
              # stream 3: the client ends in the middle of a message
              + frame(HEADERS, END_HEADERS, 3, grpc_request_headers(b"/test.Echo/Unary"))
              + frame(DATA, END_STREAM, 3, grpc_msg(b"truncated")[:7]))
    ended = set()

    def both_ended(f):
        if f[0] == HEADERS and (f[1] & END_STREAM):
            ended.add(f[2])
        return ended == {1, 3}

    frames, _ = read_frames(s, timeout=5, until=both_ended)
    s.close()
    data1 = b"".join(f[3] for f in frames if f[0] == DATA and f[2] == 1)
    assert data1 == grpc_msg(b"raw")
    assert ended == {1, 3}  # stream 3 got trailers (INTERNAL), no crash


def test_idle_client_without_preface_is_closed(srv, chan):
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    assert s.recv(1) == b""  # server closed us (idle timeout 1 s)
    assert 0.5 < time.monotonic() - t0 < 8
    s.close()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(PREFACE[:10])  # a prefix of the preface, then silence
    assert s.recv(1) == b""
    s.close()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost")  # slowloris: never completes
    t0 = time.monotonic()
    assert s.recv(1) == b""
    assert time.monotonic() - t0 < 8
    s.close()
    assert unary(chan)(b"ok", timeout=5) == b"ok"


def test_client_that_never_reads(srv, chan):
    # Ask for 50 x 1 MB and never read: the client's 64 KiB window stops the
    # stream; the queue reaches --max-pending (4 MB) and the stream is reset
    # with ENHANCE_YOUR_CALM (RESOURCE_EXHAUSTED for gRPC clients).
    s = h2_connect(srv, rcvbuf=4096)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0)
              + frame(HEADERS, END_HEADERS, 1, grpc_request_headers(b"/test.Echo/ServerStream"))
              + frame(DATA, END_STREAM, 1, grpc_msg(b"50 1000000")))
    time.sleep(0.5)
    for _ in range(20):  # others are served meanwhile
        assert unary(chan)(b"x", timeout=5) == b"x"
    frames, _ = read_frames(s, timeout=5, until=lambda f: f[0] == RST_STREAM and f[2] == 1)
    rst = [f for f in frames if f[0] == RST_STREAM and f[2] == 1]
    assert rst and int.from_bytes(rst[0][3], "big") == 11  # ENHANCE_YOUR_CALM
    s.close()
    wait_for(lambda: stats(srv)["live_calls"] == 0, what="reset call closed")


def rss_kib(srv):
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_client_with_open_window_that_never_reads(srv, chan):
    # The client opens a huge window and never reads: the kernel buffers fill,
    # the server stops pulling frames, the call queue hits the limit and the
    # stream is reset (or, if even the reset cannot go out, the stalled
    # connection is closed after the idle timeout). Memory stays bounded and
    # others are served.
    wait_for(lambda: stats(srv)["live_calls"] == 0, what="no live calls")
    rss0 = rss_kib(srv)
    s = h2_connect(srv, rcvbuf=4096)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0x7FFFFFFF))
              + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535))
              + frame(HEADERS, END_HEADERS, 1, grpc_request_headers(b"/test.Echo/ServerStream"))
              + frame(DATA, END_STREAM, 1, grpc_msg(b"200 1000000")))
    for _ in range(20):
        assert unary(chan)(b"y", timeout=5) == b"y"
    wait_for(lambda: stats(srv)["live_calls"] == 0, timeout=15, what="call reset or conn closed")
    assert rss_kib(srv) - rss0 < 64 * 1024  # 200 MB were asked for
    s.close()


def test_many_half_sent_big_requests_are_bounded(srv, chan):
    # 20 streams each announce a 2 MiB message and send 10 bytes of it: the
    # connection may hold 32 MiB of partial requests, so the 17th stream is
    # failed (trailers-only RESOURCE_EXHAUSTED), the others wait untouched.
    s = h2_connect(srv)
    out = PREFACE + frame(SETTINGS, 0, 0)
    for i in range(20):
        out += frame(HEADERS, END_HEADERS, 1 + 2 * i, grpc_request_headers(b"/test.Echo/Bidi"))
        out += frame(DATA, 0, 1 + 2 * i, b"\x00" + struct.pack(">I", 2 * 1024 * 1024) + b"p" * 10)
    s.sendall(out)
    frames, _ = read_frames(s, timeout=3, until=lambda f: f[0] == HEADERS and f[2] == 39)
    ended = sorted(f[2] for f in frames if f[0] == HEADERS and (f[1] & END_STREAM))
    assert ended == [33, 35, 37, 39]
    assert unary(chan)(b"ok", timeout=5) == b"ok"
    s.close()
    wait_for(lambda: stats(srv)["live_calls"] == 0, what="calls closed with the connection")


def test_ping_acks(srv):
    # An idle connection's PING is acknowledged, with its payload.
    s = h2_connect(srv)
    t0 = time.monotonic()
    s.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(PING, 0, 0, b"idle-abc"))
    frames, _ = read_frames(s, timeout=3, until=lambda f: f[0] == PING)
    pings = [f for f in frames if f[0] == PING]
    assert pings == [(PING, ACK, 0, b"idle-abc")]
    assert time.monotonic() - t0 < 1.0
    # PINGs that arrive with a request are acknowledged in order, and the request is answered.
    s.sendall(frame(PING, 0, 0, b"busy-123") + frame(PING, 0, 0, b"busy-456")
              + frame(HEADERS, END_HEADERS, 1, grpc_request_headers(b"/test.Echo/Unary"))
              + frame(DATA, END_STREAM, 1, grpc_msg(b"hi")))
    frames, _ = read_frames(s, timeout=3, until=lambda f: f[0] == HEADERS and f[1] & END_STREAM)
    acks = [f[3] for f in frames if f[0] == PING]
    assert acks == [b"busy-123", b"busy-456"]
    assert any(f[0] == DATA and f[2] == 1 and f[3].endswith(b"hi") for f in frames)
    # A burst of PINGs: every one is acknowledged, in order.
    s.sendall(b"".join(frame(PING, 0, 0, b"many-%03d" % i) for i in range(10)))
    frames, _ = read_frames(s, timeout=3, until=lambda f: f[0] == PING and f[3] == b"many-009")
    assert [f[3] for f in frames if f[0] == PING] == [b"many-%03d" % i for i in range(10)]
    s.close()


def test_ping_flood_from_a_client_that_never_reads(srv, chan):
    s = h2_connect(srv, rcvbuf=4096)
    s.settimeout(5)
    try:
        s.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(PING, 0, 0, b"12345678") * 100000)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass  # closed on us: fine
    assert unary(chan)(b"ok", timeout=5) == b"ok"
    s.close()


def test_random_frames_fuzz(srv, chan):
    import random
    rnd = random.Random(1234)
    for i in range(150):
        s = h2_connect(srv)
        out = PREFACE + frame(SETTINGS, 0, 0)
        for _ in range(rnd.randint(1, 8)):
            ftype = rnd.choice([DATA, HEADERS, 2, RST_STREAM, SETTINGS, 5, PING, GOAWAY,
                                WINDOW_UPDATE, 9, rnd.randint(0, 255)])
            sid = rnd.choice([0, 1, 3, 2, rnd.randint(0, 2**31 - 1)])
            if ftype == HEADERS and rnd.random() < 0.5:
                payload = grpc_request_headers(rnd.choice([b"/test.Echo/Unary", b"/test.Echo/Bidi",
                                                           b"/x/y", b"bad"]))
            elif ftype == DATA and rnd.random() < 0.5:
                payload = grpc_msg(rnd.randbytes(rnd.randint(0, 50)), rnd.choice([0, 0, 1]))
            else:
                payload = rnd.randbytes(rnd.choice([0, 1, 4, 5, 8, 9, 50]))
            out += frame(ftype, rnd.randint(0, 255), sid, payload)
        if rnd.random() < 0.3:
            out = out[:rnd.randint(24, len(out))]
        try:
            s.sendall(out)
            read_frames(s, timeout=0.2)
        except OSError:
            pass
        s.close()
    for i in range(50):  # HTTP/1.1 garbage
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        try:
            s.sendall(rnd.choice([b"GET ", b"POST /echo HTTP/1.1\r\n", b""]) + rnd.randbytes(200)
                      + b"\r\n\r\n")
            s.settimeout(0.2)
            s.recv(4096)
        except OSError:
            pass
        s.close()
    assert unary(chan)(b"survived", timeout=5) == b"survived"


def test_too_many_streams_on_one_connection(srv):
    # the 101st concurrent stream (before the client saw our SETTINGS) is refused
    s = h2_connect(srv)
    out = PREFACE + frame(SETTINGS, 0, 0)
    for i in range(101):
        out += frame(HEADERS, END_HEADERS, 1 + 2 * i, grpc_request_headers(b"/test.Echo/Ticker"))
        out += frame(DATA, 0, 1 + 2 * i, grpc_msg(b""))
    s.sendall(out)
    frames, _ = read_frames(s, timeout=5, until=lambda f: f[0] == RST_STREAM)
    s.close()
    rst = [f for f in frames if f[0] == RST_STREAM]
    assert rst and rst[0][2] == 201 and int.from_bytes(rst[0][3], "big") == 7  # REFUSED_STREAM
    wait_for(lambda: stats(srv)["live_calls"] == 0, what="calls closed with the connection")


def test_server_still_healthy(srv, chan):
    assert srv.alive()
    assert unary(chan)(b"end", timeout=5) == b"end"
    st = stats(srv)
    # by now the module's tests have produced each kind of event
    assert st["calls_live"] == 0 and st["live_calls"] == 0
    assert st["calls_started"] > 1000
    assert st["calls_rejected"] >= 3 and st["calls_too_large"] >= 2
    assert st["calls_overflowed"] >= 1
    assert st["http_requests"] > 10 and st["bytes_received"] > 10**6 and st["bytes_sent"] > 10**6
    assert 1 <= st["conns_open"] < 10


@pytest.mark.skipif(not shutil.which("h2load"), reason="h2load (nghttp2-client) not installed")
@pytest.mark.parametrize("path", ["/test.Echo/Unary", "/test.Echo/Bidi"])
def test_h2load_many_streams(srv, tmp_path, path):
    req = tmp_path / "req.bin"
    req.write_bytes(grpc_msg(b"hello"))
    p = subprocess.run(["h2load", "-n", "40000", "-c", "8", "-m", "64", "-d", str(req),
                        "-H", "content-type: application/grpc", "-H", "te: trailers",
                        srv.url(path)], capture_output=True, timeout=120)
    out = p.stdout.decode()
    assert "40000 succeeded, 0 failed, 0 errored, 0 timeout" in out, out
    assert "40000 2xx" in out, out
    wait_for(lambda: stats(srv)["live_calls"] == 0, what="every call closed")


# ---------------------------------------------------------------- stock etcd clients

def etcdctl(srv, *args):
    # "http://" as users write it: grpc-go then sends it in :authority
    return subprocess.run(["etcdctl", "--endpoints", "http://" + srv.addr, "--command-timeout", "5s",
                           *args],
                          capture_output=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"})


@pytest.mark.skipif(not shutil.which("etcdctl"), reason="etcdctl (etcd-client) not installed")
def test_etcdctl_grpc_go_interop(srv):
    p = etcdctl(srv, "get", "foo")
    assert p.returncode == 0 and p.stdout == b"", p.stderr
    p = etcdctl(srv, "put", "foo", "bar")
    assert p.returncode == 0 and p.stdout.strip() == b"OK", p.stderr
    p = etcdctl(srv, "del", "foo")
    assert p.returncode != 0
    assert b"unknown method DeleteRange for service etcdserverpb.KV" in p.stderr
    p = etcdctl(srv, "member", "list")
    assert p.returncode != 0 and b"unknown service etcdserverpb.Cluster" in p.stderr


@pytest.mark.skipif(not shutil.which("etcdctl"), reason="etcdctl (etcd-client) not installed")
def test_etcdctl_request_too_large():
    s2 = Server("--max-request-bytes", "100000")
    try:
        p = etcdctl(s2, "put", "big", "v" * 120000)
        assert p.returncode != 0
        assert b"etcdserver: request is too large" in p.stderr, p.stderr
        assert etcdctl(s2, "put", "small", "v" * 1000).returncode == 0
    finally:
        s2.stop()


def test_python_etcd3_interop(srv):
    etcd3 = pytest.importorskip("etcd3")
    c = etcd3.client(host="127.0.0.1", port=srv.port, timeout=5)
    assert c.get("foo") == (None, None)
    c.put("foo", "bar")
    c.close()


# ---------------------------------------------------------------- limits

def test_connection_limit():
    s2 = Server("--max-conns", "3")
    try:
        socks = [socket.create_connection(("127.0.0.1", s2.port), timeout=5) for _ in range(3)]
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", s2.port), timeout=5)
        assert extra.recv(1) == b""  # accepted and closed at once
        extra.close()
        with grpc.insecure_channel(s2.addr) as ch:  # the 4th: refused too
            with pytest.raises(grpc.RpcError) as e:
                unary(ch)(b"no", timeout=2)
            assert e.value.code() in (grpc.StatusCode.UNAVAILABLE,
                                      grpc.StatusCode.DEADLINE_EXCEEDED)
        for s in socks:
            s.close()
        time.sleep(0.3)
        with grpc.insecure_channel(s2.addr) as ch:
            assert unary(ch)(b"ok", timeout=5) == b"ok"
        assert stats(s2)["conns_refused"] >= 2
    finally:
        s2.stop()


def test_stop_with_live_calls_and_streams():
    s2 = Server()
    ch = grpc.insecure_channel(s2.addr)
    it = ch.unary_stream("/test.Echo/Ticker", request_serializer=IDENT,
                         response_deserializer=IDENT)(b"", timeout=10)
    assert next(it) == b"tick 0"
    fut = unary(ch, "/test.Echo/Delayed").future(b"5000", timeout=10)
    hs = socket.create_connection(("127.0.0.1", s2.port), timeout=5)
    hs.sendall(b"GET /stream?n=100000 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert hs.recv(100).startswith(b"HTTP/1.1 200")
    s2.stop()  # asserts a clean exit (ASan: nothing leaked)
    with pytest.raises(grpc.RpcError):
        fut.result()
    hs.close()
    ch.close()


def test_stop_from_inside_a_handler():
    s2 = Server()
    ch = grpc.insecure_channel(s2.addr)
    it = ch.unary_stream("/test.Echo/Ticker", request_serializer=IDENT,
                         response_deserializer=IDENT)(b"", timeout=10)
    assert next(it) == b"tick 0"
    curl("-X", "POST", s2.url("/shutdown"))
    _, err = s2.proc.communicate(timeout=20)
    assert s2.proc.returncode == 0 and b"clean exit" in err, err
    assert b"AddressSanitizer" not in err
    ch.close()


def test_bad_listen_url():
    for url in ("https://127.0.0.1:0", "127.0.0.1", "127.0.0.1:99999", "[::1"):
        p = subprocess.run([SERVER, "--listen", url], capture_output=True, timeout=10)
        assert p.returncode == 1, url
        assert b"listen url" in p.stderr
    p = subprocess.run([SERVER, "--listen", "http://no-such-host.invalid:2379"],
                       capture_output=True, timeout=30)
    assert p.returncode == 1 and b"cannot resolve" in p.stderr


def test_localhost_url():
    s2 = Server("--listen", "http://localhost:0/")
    try:
        with grpc.insecure_channel(f"localhost:{s2.port}") as ch:
            assert unary(ch)(b"lo", timeout=5) == b"lo"
    finally:
        s2.stop()


# ------------------------------------------------------------ virtual calls

def virtual(srv, method, body=b"", half=False, timeout=10):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    try:
        q = "/virtual?method=" + method + ("&half=1" if half else "")
        c.request("POST", q, body=body)
        r = c.getresponse()
        return r.status, r.read().decode().splitlines()
    finally:
        c.close()


def test_virtual_unary_and_errors(srv):
    assert virtual(srv, "/test.Echo/Unary", b"hello") == (200, ["msg 5 hello", "status 0 "])
    assert virtual(srv, "/test.Echo/Fail", b"9 not now") == (200, ["status 9 not now"])
    st, lines = virtual(srv, "/test.Echo/Delayed", b"50")  # replied later, from a timer
    assert (st, lines) == (200, ["msg 4 late", "status 0 "])
    assert virtual(srv, "/test.Echo/Bidi", b"x", half=True) == (200, ["msg 1 x", "status 0 "])
    st, lines = virtual(srv, "/test.Echo/Paced", b"5 10", half=True)
    assert st == 200 and len(lines) == 7 and lines[-1] == "status 0 ", lines
    st, lines = virtual(srv, "/test.Echo/Unary", b"", half=True)
    assert lines == ["msg 0 ", "status 0 "]  # an empty body is one empty message
    # half-close without a message, no on_half_close: grpc's "no request message"
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    c.request("POST", "/virtual?method=/test.Echo/Unary&half=1&nomsg=1", body=b"")
    assert c.getresponse().read() == b"status 13 grpc: no request message received\n"
    c.close()
    assert virtual(srv, "/test.Nope/X")[0] == 404
    wait_for(lambda: stats(srv)["live_calls"] == 0 and stats(srv)["calls_live"] == 0,
             what="virtual calls closed")


def test_virtual_stream_closed_by_client(srv):
    import http.client
    before = stats(srv)["closed"]
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    c.request("POST", "/virtual?method=/test.Echo/Ticker", body=b"")
    r = c.getresponse()
    got = [r.readline() for _ in range(3)]
    assert got == [b"msg 6 tick 0\n", b"msg 6 tick 1\n", b"msg 6 tick 2\n"]
    assert stats(srv)["calls_live"] >= 1
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    wait_for(lambda: stats(srv)["closed"] > before and stats(srv)["calls_live"] == 0,
             what="on_close of the virtual ticker")


def test_virtual_call_live_at_shutdown():
    import http.client
    s2 = Server()
    c = http.client.HTTPConnection("127.0.0.1", s2.port, timeout=10)
    c.request("POST", "/virtual?method=/test.Echo/Ticker", body=b"")
    r = c.getresponse()
    assert r.readline() == b"msg 6 tick 0\n"
    s2.stop()  # SIGTERM: finishes the virtual call, exits cleanly
    c.close()
