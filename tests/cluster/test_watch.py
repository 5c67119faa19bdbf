"""Watch through etcdctl and python3-etcd3: history replay, live events, prefix, prev-kv,
compaction. (Filters are covered by the watch hub's unit tests: python3-etcd3 0.12 cannot
send them.)"""
import json
import os
import subprocess
import threading
import time

import pytest


def start_watch(c, *args, endpoint=None):
    env = dict(os.environ, ETCDCTL_API="3")
    cmd = ["etcdctl", "--endpoints", endpoint or c.members[0].client_url, "watch"] + list(args)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []

    def reader():
        for line in p.stdout:
            lines.append(line.rstrip("\n"))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    return p, lines


def wait_lines(lines, n, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline and len(lines) < n:
        time.sleep(0.05)
    return list(lines)


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()


def rev_of(c, key):
    return json.loads(c.etcdctl("get", key, "-w", "json").stdout)["kvs"][0]["mod_revision"]


@pytest.fixture(params=["cluster1", "cluster3"])
def c(request):
    return request.getfixturevalue(request.param)


def test_history_replay_from_revision(c):
    c.etcdctl("put", "wh/a", "1")
    r = rev_of(c, "wh/a")
    c.etcdctl("put", "wh/b", "2")
    c.etcdctl("del", "wh/a")
    p, lines = start_watch(c, "wh/", "--prefix", "--rev", str(r))
    got = wait_lines(lines, 8)
    stop(p)
    assert got[:8] == ["PUT", "wh/a", "1", "PUT", "wh/b", "2", "DELETE", "wh/a"]


def test_live_events_on_every_member(c):
    # a watch on the last member sees writes made through the first
    p, lines = start_watch(c, "live", endpoint=c.members[-1].client_url)
    time.sleep(0.5)
    for v in ("x", "y"):
        c.etcdctl("put", "live", v, endpoints=c.members[0].client_url)
    got = wait_lines(lines, 6)
    stop(p)
    assert got[:6] == ["PUT", "live", "x", "PUT", "live", "y"]


def test_prev_kv(c):
    c.etcdctl("put", "pk", "old")
    p, lines = start_watch(c, "pk", "--prev-kv")
    time.sleep(0.5)
    c.etcdctl("put", "pk", "new")
    got = wait_lines(lines, 5)
    stop(p)
    assert got[:5] == ["PUT", "pk", "old", "pk", "new"]


def test_compacted_start_revision_is_refused(c):
    c.etcdctl("put", "wc", "1")
    r = rev_of(c, "wc")
    c.etcdctl("put", "wc", "2")
    c.etcdctl("compaction", str(r + 1))
    env = dict(os.environ, ETCDCTL_API="3")
    p = subprocess.run(["etcdctl", "--endpoints", c.members[0].client_url, "watch", "wc",
                        "--rev", str(r)], capture_output=True, text=True, env=env, timeout=20)
    assert "required revision has been compacted" in (p.stdout + p.stderr)


def test_python_etcd3_watch(cluster1):
    etcd3 = pytest.importorskip("etcd3")
    c = cluster1
    client = etcd3.client(host="127.0.0.1", port=c.members[0].client_port, timeout=5)
    events, cancel = client.watch_prefix("pyw/")
    client.put("pyw/1", "a")
    client.delete("pyw/1")
    got = []
    for ev in events:
        got.append((type(ev).__name__, ev.key))
        if len(got) == 2:
            break
    cancel()
    assert got == [("PutEvent", b"pyw/1"), ("DeleteEvent", b"pyw/1")]
