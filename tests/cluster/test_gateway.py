"""etcd's JSON gateway (POST /v3/...) on the client port, as etcd 3.4 serves it:
bytes as base64, int64 as strings, grpc-gateway's error bodies and status codes,
/v3/watch as a chunked stream of {"result":...} lines. The gRPC clients must keep
working next to it."""
import base64
import http.client
import json
import threading
import time
import urllib.error
import urllib.request

import pytest


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    return base64.b64decode(s).decode()


def post(url, path, body, raw=False, timeout=10):
    data = body if raw else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), json.loads(e.read())


def ok(url, path, body):
    st, ct, js = post(url, path, body)
    assert st == 200, (path, st, js)
    assert ct == "application/json"
    return js


def test_response_headers(cluster1):
    u = cluster1.members[0].client_url
    req = urllib.request.Request(u + "/v3/maintenance/status", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Grpc-Metadata-Content-Type"] == "application/grpc"
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert r.headers["Content-Type"] == "application/json"


def test_put_range(cluster1):
    u = cluster1.members[0].client_url
    r = ok(u, "/v3/kv/put", {"key": b64("gw/a"), "value": b64("1")})
    h = r["header"]
    assert set(h) == {"cluster_id", "member_id", "revision", "raft_term"}
    assert all(isinstance(v, str) for v in h.values())  # int64 as strings
    rev_a = int(h["revision"])
    ok(u, "/v3/kv/put", {"key": b64("gw/b"), "value": b64("2")})
    ok(u, "/v3/kv/put", {"key": b64("gw/a"), "value": b64("3"), "prev_kv": True})

    r = ok(u, "/v3/kv/range", {"key": b64("gw/a")})
    assert r["count"] == "1"
    kv = r["kvs"][0]
    assert unb64(kv["key"]) == "gw/a" and unb64(kv["value"]) == "3"
    assert kv["version"] == "2" and kv["create_revision"] == str(rev_a)

    # prefix through range_end; keys_only; limit
    r = ok(u, "/v3/kv/range", {"key": b64("gw/"), "range_end": b64("gw0")})
    assert [unb64(k["key"]) for k in r["kvs"]] == ["gw/a", "gw/b"] and r["count"] == "2"
    r = ok(u, "/v3/kv/range", {"key": b64("gw/"), "range_end": b64("gw0"), "keys_only": True,
                              "limit": 1})
    assert "value" not in r["kvs"][0] and r["more"] is True
    # lowerCamelCase names are accepted on input, as jsonpb does
    r = ok(u, "/v3/kv/range", {"key": b64("gw/"), "rangeEnd": b64("gw0"), "countOnly": True})
    assert r["count"] == "2" and "kvs" not in r
    # an older revision
    r = ok(u, "/v3/kv/range", {"key": b64("gw/a"), "revision": str(rev_a)})
    assert unb64(r["kvs"][0]["value"]) == "1"
    # absent key: no kvs, no count (defaults are omitted)
    r = ok(u, "/v3/kv/range", {"key": b64("gw/none")})
    assert "kvs" not in r and "count" not in r


def test_delete_range_prev_kv(cluster1):
    u = cluster1.members[0].client_url
    for k in ("del/x", "del/y", "keep"):
        ok(u, "/v3/kv/put", {"key": b64(k), "value": b64("v-" + k)})
    r = ok(u, "/v3/kv/deleterange", {"key": b64("del/"), "range_end": b64("del0"),
                                     "prev_kv": True})
    assert r["deleted"] == "2"
    assert sorted(unb64(p["key"]) for p in r["prev_kvs"]) == ["del/x", "del/y"]
    assert sorted(unb64(p["value"]) for p in r["prev_kvs"]) == ["v-del/x", "v-del/y"]
    r = ok(u, "/v3/kv/range", {"key": b64("del/"), "range_end": b64("del0")})
    assert "kvs" not in r
    r = ok(u, "/v3/kv/deleterange", {"key": b64("del/x")})
    assert "deleted" not in r


def test_txn(cluster1):
    u = cluster1.members[0].client_url
    ok(u, "/v3/kv/put", {"key": b64("txn/k"), "value": b64("old")})
    txn = {"compare": [{"key": b64("txn/k"), "result": "EQUAL", "target": "VALUE",
                        "value": b64("old")}],
           "success": [{"request_put": {"key": b64("txn/k"), "value": b64("new")}}],
           "failure": [{"request_range": {"key": b64("txn/k")}}]}
    r = ok(u, "/v3/kv/txn", txn)
    assert r["succeeded"] is True and "response_put" in r["responses"][0]
    r = ok(u, "/v3/kv/txn", txn)  # compare fails now
    assert "succeeded" not in r
    rr = r["responses"][0]["response_range"]
    assert unb64(rr["kvs"][0]["value"]) == "new"
    # compare on version with a number, as the gateway accepts
    r = ok(u, "/v3/kv/txn", {"compare": [{"key": b64("txn/k"), "target": "VERSION",
                                          "result": "GREATER", "version": 1}],
                             "success": [{"request_delete_range": {"key": b64("txn/k")}}]})
    assert r["succeeded"] is True
    assert r["responses"][0]["response_delete_range"]["deleted"] == "1"


def test_compaction(cluster1):
    u = cluster1.members[0].client_url
    r1 = ok(u, "/v3/kv/put", {"key": b64("cmp"), "value": b64("1")})
    old = int(r1["header"]["revision"])
    r2 = ok(u, "/v3/kv/put", {"key": b64("cmp"), "value": b64("2")})
    now = int(r2["header"]["revision"])
    r = ok(u, "/v3/kv/compaction", {"revision": str(now), "physical": True})
    assert "header" in r
    st, _, js = post(u, "/v3/kv/range", {"key": b64("cmp"), "revision": str(old)})
    assert st == 400  # OutOfRange -> 400
    assert js == {"error": "etcdserver: mvcc: required revision has been compacted",
                  "code": 11,
                  "message": "etcdserver: mvcc: required revision has been compacted"}
    st, _, js = post(u, "/v3/kv/range", {"key": b64("cmp"), "revision": str(now + 1000)})
    assert st == 400 and js["code"] == 11
    assert js["error"] == "etcdserver: mvcc: required revision is a future revision"


def test_lease(cluster1):
    u = cluster1.members[0].client_url
    r = ok(u, "/v3/lease/grant", {"TTL": "60"})
    lid = r["ID"]
    assert isinstance(lid, str) and r["TTL"] == "60"
    ok(u, "/v3/kv/put", {"key": b64("leased"), "value": b64("v"), "lease": lid})
    for path in ("/v3/lease/timetolive", "/v3/kv/lease/timetolive"):
        r = ok(u, path, {"ID": lid, "keys": True})
        assert r["ID"] == lid and r["grantedTTL"] == "60"
        assert 0 < int(r["TTL"]) <= 60
        assert [unb64(k) for k in r["keys"]] == ["leased"]
    for path in ("/v3/lease/leases", "/v3/kv/lease/leases"):
        r = ok(u, path, {})
        assert {"ID": lid} in r["leases"]
    r = ok(u, "/v3/lease/revoke", {"ID": lid})
    assert "header" in r
    assert "kvs" not in ok(u, "/v3/kv/range", {"key": b64("leased")})
    st, _, js = post(u, "/v3/kv/lease/revoke", {"ID": lid})
    assert st == 404
    assert js == {"error": "etcdserver: requested lease not found", "code": 5,
                  "message": "etcdserver: requested lease not found"}
    # the alias works too
    lid2 = ok(u, "/v3/lease/grant", {"TTL": 30})["ID"]
    ok(u, "/v3/kv/lease/revoke", {"ID": lid2})
    r = ok(u, "/v3/lease/timetolive", {"ID": lid2})
    assert r["TTL"] == "-1"


def stream_lines(url, path, raw_body, timeout=10):
    """POST a body and read the whole (chunked) answer: the stream must end by itself."""
    req = urllib.request.Request(url + path, data=raw_body, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        assert r.status == 200
        return [json.loads(x) for x in r.read().decode().splitlines() if x.strip()]


def test_lease_keepalive_stream(cluster3):
    """/v3/lease/keepalive answers every request of the body, then ends, through any member
    (a follower's answers come back through the log, after the body's end)."""
    u0 = cluster3.members[0].client_url
    lid = ok(u0, "/v3/lease/grant", {"TTL": 60})["ID"]
    body = (json.dumps({"ID": lid}) + json.dumps({"ID": lid})).encode()
    for m in cluster3.members:
        lines = stream_lines(m.client_url, "/v3/lease/keepalive", body)
        assert len(lines) == 2, lines
        for x in lines:
            assert x["result"]["ID"] == lid and x["result"]["TTL"] == "60", x
    lines = stream_lines(u0, "/v3/lease/keepalive", json.dumps({"ID": "12345"}).encode())
    assert len(lines) == 1 and lines[0]["result"]["ID"] == "12345"
    assert "TTL" not in lines[0]["result"]  # 0: no such lease, as etcd answers
    ok(u0, "/v3/lease/revoke", {"ID": lid})


def test_maintenance_and_cluster_routes(cluster3):
    """The rest of etcd 3.4's Maintenance and Cluster routes map to the same calls."""
    u = cluster3.members[0].client_url
    r = ok(u, "/v3/maintenance/alarm", {"action": "GET"})
    assert "alarms" not in r and "header" in r
    r = ok(u, "/v3/maintenance/hash", {})
    assert isinstance(r["hash"], int)
    hashes = set()
    rev = ok(u, "/v3/kv/put", {"key": b64("gw/hash"), "value": b64("1")})["header"]["revision"]
    for m in cluster3.members:
        deadline = time.time() + 10
        while True:
            r = ok(m.client_url, "/v3/maintenance/hashkv", {"revision": rev})
            if r.get("hash_revision") == rev or time.time() > deadline:
                break
            time.sleep(0.1)
        hashes.add(r["hash"])
    assert len(hashes) == 1, hashes
    assert "header" in ok(u, "/v3/maintenance/defragment", {})
    r = ok(u, "/v3/cluster/member/add", {"peerURLs": ["http://127.0.0.1:1"], "isLearner": True})
    new_id = r["member"]["ID"]
    assert r["member"]["isLearner"] and len(r["members"]) == 4
    r = ok(u, "/v3/cluster/member/remove", {"ID": new_id})
    assert len(r["members"]) == 3
    st, _, js = post(u, "/v3/cluster/member/promote", {"ID": new_id})
    assert st == 404 and js["message"] == "etcdserver: member not found", js
    st, _, js = post(u, "/v3/cluster/member/update", {"ID": "1", "peerURLs": ["http://127.0.0.1:1"]})
    assert st == 404 and js["message"] == "etcdserver: member not found", js
    leader = ok(u, "/v3/maintenance/status", {})["leader"]
    lm = next(m for m in cluster3.members
              if ok(m.client_url, "/v3/maintenance/status", {})["header"]["member_id"] == leader)
    assert "header" in ok(lm.client_url, "/v3/maintenance/transfer-leadership",
                          {"targetID": leader})


def test_member_list_status(cluster3):
    for m in cluster3.members:
        r = ok(m.client_url, "/v3/cluster/member/list", {})
        assert sorted(x["name"] for x in r["members"]) == ["m0", "m1", "m2"]
        mine = [x for x in r["members"] if x["name"] == m.name][0]
        assert mine["peerURLs"] == [m.peer_url] and mine["clientURLs"] == [m.client_url]
        assert mine["ID"] == r["header"]["member_id"]
        s = ok(m.client_url, "/v3/maintenance/status", {})
        assert s["version"].startswith("3.") and s["leader"] != "0"
        assert s["header"]["member_id"] == mine["ID"]
        assert int(s["dbSize"]) > 0


def test_follower_put(cluster3):
    """A write through any member's gateway (followers forward to the leader)."""
    for i, m in enumerate(cluster3.members):
        ok(m.client_url, "/v3/kv/put", {"key": b64("fw/%d" % i), "value": b64(m.name)})
    for m in cluster3.members:
        r = ok(m.client_url, "/v3/kv/range", {"key": b64("fw/"), "range_end": b64("fw0")})
        assert r["count"] == "3"
    out = cluster3.etcdctl("get", "--prefix", "fw/", "--print-value-only").stdout.split()
    assert out == ["m0", "m1", "m2"]


class WatchStream:
    """A POST /v3/watch read line by line in a thread."""

    def __init__(self, port, body):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        self.conn.request("POST", "/v3/watch", body=body)
        self.resp = self.conn.getresponse()
        self.lines = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    return
                self.lines.append(line)
        except Exception:
            return

    def wait(self, n, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.lines) < n:
            time.sleep(0.02)
        assert len(self.lines) >= n, self.lines
        return [json.loads(l) for l in self.lines[:n]]

    def close(self):
        self.conn.sock.shutdown(2) if self.conn.sock else None
        self.conn.close()


def test_watch_stream(cluster1):
    m = cluster1.members[0]
    u = m.client_url
    w = WatchStream(m.client_port, json.dumps(
        {"create_request": {"key": b64("wk/"), "range_end": b64("wk0"), "prev_kv": True}}))
    try:
        assert w.resp.status == 200
        assert w.resp.getheader("Transfer-Encoding") == "chunked"
        assert w.resp.getheader("Content-Type") == "application/json"
        first = w.wait(1)[0]
        assert list(first) == ["result"] and first["result"]["created"] is True
        wid = first["result"].get("watch_id", "0")
        ok(u, "/v3/kv/put", {"key": b64("wk/1"), "value": b64("a")})
        ok(u, "/v3/kv/put", {"key": b64("wk/1"), "value": b64("b")})
        ok(u, "/v3/kv/deleterange", {"key": b64("wk/1")})
        ok(u, "/v3/kv/put", {"key": b64("other"), "value": b64("x")})
        msgs = w.wait(4)[1:]
        evs = [e for mm in msgs for e in mm["result"]["events"]]
        assert all(mm["result"].get("watch_id", "0") == wid for mm in msgs)
        assert [e.get("type", "PUT") for e in evs] == ["PUT", "PUT", "DELETE"]
        assert unb64(evs[1]["kv"]["value"]) == "b" and unb64(evs[1]["prev_kv"]["value"]) == "a"
        assert unb64(evs[2]["kv"]["key"]) == "wk/1"
        # each message is exactly one line
        assert all(l.endswith(b"}\n") for l in w.lines[:4])
    finally:
        w.close()
    # the server forgets the stream: later writes and other clients are fine
    ok(u, "/v3/kv/put", {"key": b64("wk/2"), "value": b64("c")})
    assert cluster1.etcdctl("get", "wk/2", "--print-value-only").stdout.strip() == "c"


def test_watch_history_and_two_requests(cluster1):
    m = cluster1.members[0]
    u = m.client_url
    r = ok(u, "/v3/kv/put", {"key": b64("wh"), "value": b64("1")})
    rev = r["header"]["revision"]
    ok(u, "/v3/kv/put", {"key": b64("wh2"), "value": b64("2")})
    # the body is a stream of WatchRequests, as the gateway's decoder reads it
    body = (json.dumps({"create_request": {"key": b64("wh"), "start_revision": rev}}) + "\n" +
            json.dumps({"create_request": {"key": b64("wh2"), "start_revision": rev}}))
    w = WatchStream(m.client_port, body)
    try:
        msgs = [x["result"] for x in w.wait(4)]
        created = [x for x in msgs if x.get("created")]
        events = [x for x in msgs if x.get("events")]
        assert len(created) == 2 and len(events) == 2
        assert {unb64(x["events"][0]["kv"]["key"]) for x in events} == {"wh", "wh2"}
    finally:
        w.close()


def test_watch_compacted(cluster1):
    m = cluster1.members[0]
    u = m.client_url
    ok(u, "/v3/kv/put", {"key": b64("wc"), "value": b64("1")})
    r = ok(u, "/v3/kv/put", {"key": b64("wc"), "value": b64("2")})
    now = r["header"]["revision"]
    ok(u, "/v3/kv/compaction", {"revision": now})
    w = WatchStream(m.client_port, json.dumps({"create_request": {"key": b64("wc"),
                                                                  "start_revision": "1"}}))
    try:
        res = [x["result"] for x in w.wait(1)]
        last = res[-1] if res[-1].get("canceled") else w.wait(2)[1]["result"]
        assert last["canceled"] is True and last["compact_revision"] == now
    finally:
        w.close()


def test_bad_input(cluster1):
    u = cluster1.members[0].client_url
    for body in (b"{not json", b"[1,2]", b'{"key": 5}', b'{"limit": "x"}',
                 b'{"key":"Zm9v", bad}'):
        st, ct, js = post(u, "/v3/kv/range", body, raw=True)
        assert st == 400, body
        assert ct == "application/json"
        assert js["code"] == 3 and js["error"] == js["message"] and js["error"], js
        assert list(js) == ["error", "message", "code"]  # etcd 3.4.23's order
    # like the gateway's json.Decoder: the first value counts, the rest is ignored
    ok(u, "/v3/kv/put", {"key": b64("tr"), "value": b64("v")})
    st, _, js = post(u, "/v3/kv/range", b'{"key":"dHI="} trailing', raw=True)
    assert st == 200 and js["count"] == "1"
    # a watch whose body does not decode fails before any message: 500, Unknown
    st, _, js = post(u, "/v3/watch", b'{"create_request": ', raw=True)
    assert st == 500 and js["code"] == 2
    # an empty body is the empty request (the gateway's decoder sees io.EOF)
    st, _, js = post(u, "/v3/maintenance/status", b"", raw=True)
    assert st == 200 and "version" in js
    st, _, js = post(u, "/v3/kv/range", b"  ", raw=True)
    assert st == 400 and js["error"] == "etcdserver: key is not provided"
    # gRPC errors keep their code and etcd's text
    st, _, js = post(u, "/v3/kv/put", {"key": "", "value": b64("x")})
    assert st == 400 and js == {"error": "etcdserver: key is not provided", "code": 3,
                                "message": "etcdserver: key is not provided"}
    st, _, js = post(u, "/v3/kv/put", {"key": b64("k"), "value": b64("x"), "lease": "12345"})
    assert st == 404 and js["code"] == 5 and js["error"] == "etcdserver: requested lease not found"
    # only POST
    req = urllib.request.Request(u + "/v3/kv/range", method="GET")
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(req, timeout=5)
    assert ei.value.code in (404, 405)


def test_keepalive_pipelined(cluster1):
    """Several gateway requests on one HTTP/1.1 connection."""
    m = cluster1.members[0]
    c = http.client.HTTPConnection("127.0.0.1", m.client_port, timeout=10)
    try:
        for i in range(20):
            c.request("POST", "/v3/kv/put", body=json.dumps({"key": b64("ka/%d" % i),
                                                            "value": b64(str(i))}))
            r = c.getresponse()
            assert r.status == 200, r.read()
            r.read()
        c.request("POST", "/v3/kv/range", body=json.dumps({"key": b64("ka/"),
                                                          "range_end": b64("ka0"),
                                                          "count_only": True}))
        r = c.getresponse()
        assert json.loads(r.read())["count"] == "20"
    finally:
        c.close()


def test_grpc_clients_still_work(cluster1):
    u = cluster1.members[0].client_url
    ok(u, "/v3/kv/put", {"key": b64("mix"), "value": b64("from-gateway")})
    assert cluster1.etcdctl("get", "mix", "--print-value-only").stdout.strip() == "from-gateway"
    cluster1.etcdctl("put", "mix", "from-etcdctl")
    r = ok(u, "/v3/kv/range", {"key": b64("mix")})
    assert unb64(r["kvs"][0]["value"]) == "from-etcdctl"
    etcd3 = pytest.importorskip("etcd3")
    cl = etcd3.client(host="127.0.0.1", port=cluster1.members[0].client_port)
    try:
        cl.put("mix2", "py")
        v, _ = cl.get("mix")
        assert v == b"from-etcdctl"
    finally:
        cl.close()
    r = ok(u, "/v3/kv/range", {"key": b64("mix2")})
    assert unb64(r["kvs"][0]["value"]) == "py"


def test_many_clients_and_dropped_requests(cluster1):
    """Concurrent gateway calls, watches dropped mid-stream, requests whose client
    leaves before the reply: everyone else keeps being served."""
    import socket
    m = cluster1.members[0]
    u = m.client_url
    errors = []

    def worker(i):
        try:
            for j in range(10):
                ok(u, "/v3/kv/put", {"key": b64("cc/%d/%d" % (i, j)), "value": b64("v")})
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in ts:
        t.start()
    watches = [WatchStream(m.client_port, json.dumps({"create_request": {"key": b64("cc/"),
                                                                         "range_end": b64("cc0")}}))
               for _ in range(10)]
    for w in watches:
        w.wait(1)
    for w in watches[:5]:
        w.close()
    # clients that send a request and leave at once
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", m.client_port), timeout=5)
        body = json.dumps({"key": b64("cc/gone"), "value": b64("x")}).encode()
        s.sendall(b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body))
        s.close()
    for t in ts:
        t.join(30)
    assert not errors, errors
    r = ok(u, "/v3/kv/range", {"key": b64("cc/"), "range_end": b64("cc0"), "count_only": True})
    assert int(r["count"]) >= 160
    # The workers may all be done before the watches exist: one more write that every live
    # watch must see (each reports it after its "created" line).
    ok(u, "/v3/kv/put", {"key": b64("cc/after"), "value": b64("a")})
    for w in watches[5:]:
        events = w.wait(2)[1:]  # the live ones saw events
        assert any(unb64(e["result"]["events"][-1]["kv"]["key"]).startswith("cc/")
                   for e in events), events
        w.close()
    assert cluster1.etcdctl("endpoint", "health").returncode == 0


def test_watch_open_at_shutdown(tmp_path):
    """SIGTERM with a gateway watch open: the member stops cleanly."""
    from conftest import Cluster
    c = Cluster(tmp_path, 1)
    c.start()
    m = c.members[0]
    w = WatchStream(m.client_port, json.dumps({"create_request": {"key": b64("z")}}))
    try:
        w.wait(1)
        rc = c.stop()
    finally:
        w.close()
    assert rc == [0]
    log = open(m.log_path, "rb").read().decode(errors="replace")
    assert "AddressSanitizer" not in log and "runtime error" not in log, log[-3000:]


def snapshot_lines(port, slow=0.0, stop_after=None):
    """POST /v3/maintenance/snapshot; the decoded {"result":...} messages, read line by line
    (slowly, to make the member wait for the reader)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/v3/maintenance/snapshot", body=b"{}")
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "application/json"
    out = []
    while True:
        line = r.readline()
        if not line:
            break
        out.append(json.loads(line)["result"])
        if stop_after and len(out) >= stop_after:
            break
        if slow:
            time.sleep(slow)
    c.close()
    return out


def test_snapshot_stream(cluster1, tmp_path):
    import hashlib
    import subprocess
    from conftest import CORD
    m = cluster1.members[0]
    u = m.client_url
    big = "x" * 100000
    for i in range(40):  # a 4 MB store: dozens of 64 KiB chunks, more than the 1 MiB pacing
        ok(u, "/v3/kv/put", {"key": b64("gwsnap/%02d" % i), "value": b64(big)})
    # a client that leaves after the first message costs nothing and changes nothing
    assert len(snapshot_lines(m.client_port, stop_after=1)) == 1
    msgs = snapshot_lines(m.client_port, slow=0.01)
    blobs = [base64.b64decode(x.get("blob", "")) for x in msgs]
    remaining = [int(x.get("remaining_bytes", "0")) for x in msgs]
    data = b"".join(blobs)
    assert len(msgs) > 60
    # every message says how much follows; the last one carries the SHA-256 of the rest
    assert remaining[-2] == 0 and remaining[-1] == 0
    assert all(remaining[i] - remaining[i + 1] == len(blobs[i + 1]) for i in range(len(msgs) - 2))
    assert remaining[0] + len(blobs[0]) == len(data) - 32
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    assert all(set(x["header"]) >= {"cluster_id", "member_id", "revision"} for x in msgs)
    # and it is a backup cord restores
    path = tmp_path / "gw.db"
    path.write_bytes(data)
    p = subprocess.run([CORD, "snapshot", "restore", str(path), "--data-dir",
                        str(tmp_path / "restored")], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert ok(u, "/v3/kv/range", {"key": b64("gwsnap/00")})["count"] == "1"


def test_snapshot_stream_waits_for_a_slow_reader(cluster1):
    # The stream is paced by what the HTTP client has not taken yet. Without that, the
    # member would queue the whole 70 MB snapshot (93 MB as JSON) at once, pass the
    # connection's 64 MiB send limit and drop the client.
    import socket
    m = cluster1.members[0]
    u = m.client_url
    big = b64("y" * 1000000)
    for i in range(70):
        ok(u, "/v3/kv/put", {"key": b64("gwslow/%02d" % i), "value": big})
    s = socket.create_connection(("127.0.0.1", m.client_port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"POST /v3/maintenance/snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    time.sleep(2)  # not reading
    n, tail = 0, b""
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        n += len(d)
        tail = (tail + d)[-64:]
        if tail.endswith(b"\r\n0\r\n\r\n"):
            break
    s.close()
    assert tail.endswith(b"\r\n0\r\n\r\n") and n > 90_000_000, (n, tail)

    # a client that leaves after the first message: the member stops reading the copy (it
    # read all 70 MB for nobody, blocking its loop meanwhile, before api_call_can_send).
    # Counted from the first message, when the copy itself (which reads the store) is made.
    def rchar():
        with open("/proc/%d/io" % m.proc.pid) as f:
            return next(int(l.split()[1]) for l in f if l.startswith("rchar"))
    c = http.client.HTTPConnection("127.0.0.1", m.client_port, timeout=30)
    c.request("POST", "/v3/maintenance/snapshot", body=b"{}")
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.readline())["result"]["remaining_bytes"]
    before = rchar()
    c.close()
    time.sleep(1)
    assert rchar() - before < 20_000_000, rchar() - before
    ok(u, "/v3/kv/deleterange", {"key": b64("gwslow/"), "range_end": b64("gwslow0")})
