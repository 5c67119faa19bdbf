"""Keys longer than LMDB's key limit (511 bytes): etcd takes keys of any length up to the request
size, and so must cord. Keys of 495 bytes and more are indexed by a prefix and a hash, and keys
sharing their first 479 bytes are sorted back into key order on every scan (src/mvcc)."""
import json

import pytest

P = "long/" + "x" * 474  # 479 bytes: the length of the indexed prefix
# (key, value): lengths on both sides of 494/495 (stored as is / hashed), all in one group
KEYS = [P + "a", P + "b" * 15, P + "b" * 16, P + "b" * 17, P + "a" + "y" * 600,
        P + "c" * 4000, "long/" + "x" * 60000]


@pytest.fixture(params=["cluster1", "cluster3"])
def c(request):
    return request.getfixturevalue(request.param)


def test_etcdctl_put_get_range_delete(c):
    for i, k in enumerate(KEYS):
        assert c.etcdctl("put", k, "v%d" % i).stdout.strip() == "OK"
    for i, k in enumerate(KEYS):
        assert c.etcdctl("get", k).stdout.splitlines() == [k, "v%d" % i]
    assert c.etcdctl("get", P + "d" * 600).stdout == ""
    listed = c.etcdctl("get", "long/", "--prefix", "--keys-only").stdout.split()
    assert listed == sorted(KEYS)
    desc = c.etcdctl("get", "long/", "--prefix", "--keys-only", "--sort-by", "KEY",
                     "--order", "DESCEND", "--limit", "3").stdout.split()
    assert desc == sorted(KEYS, reverse=True)[:3]
    # from a key inside the group
    start = sorted(KEYS)[2]
    out = c.etcdctl("get", start, "--from-key", "--keys-only").stdout.split()
    assert out == sorted(KEYS)[2:]
    doc = json.loads(c.etcdctl("get", "long/", "--prefix", "--limit", "1", "-w", "json").stdout)
    assert doc["count"] == len(KEYS) and doc["more"]
    # a range that ends inside the group
    end = sorted(KEYS)[4]
    out = c.etcdctl("get", P, end, "--keys-only").stdout.split()
    assert out == sorted(KEYS)[:4]
    out = c.etcdctl("del", "long/", "--prefix", "--prev-kv").stdout.splitlines()
    assert out[0] == str(len(KEYS))
    assert out[1::2] == sorted(KEYS)
    assert c.etcdctl("get", "long/", "--prefix").stdout == ""


def test_python_client_binary_keys_txn_lease_watch(c):
    etcd3 = pytest.importorskip("etcd3")
    m = c.members[-1]
    client = etcd3.client(host="127.0.0.1", port=m.client_port, timeout=10)
    base = b"bin/" + bytes(range(256)) * 2  # 516 bytes, every byte value
    keys = [base + b"\x00" * 40, base + b"\xff", base + bytes([7]) * 1000, base]
    for k in keys:
        client.put(k, k[-8:])
    got = [meta.key for _, meta in client.get_prefix(b"bin/")]
    assert got == sorted(keys)
    # a compare on a hashed key
    ok, _ = client.transaction(compare=[client.transactions.value(keys[2]) == keys[2][-8:]],
                               success=[client.transactions.put(keys[2], b"swapped")],
                               failure=[])
    assert ok and client.get(keys[2])[0] == b"swapped"
    # a key of 1 MiB
    big = b"bin/" + b"k" * (1 << 20)
    client.put(big, b"big")
    value, meta = client.get(big)
    assert value == b"big" and meta.key == big
    # leases: revoking deletes the long keys by their full names
    lease = client.lease(60)
    client.put(keys[0], b"leased", lease=lease)
    client.put(keys[1], b"leased", lease=lease)
    rev = client.put(b"bin/marker", b"m").header.revision
    lease.revoke()
    assert client.get(keys[0])[0] is None and client.get(keys[1])[0] is None
    # the watch history carries the full keys of the revoke's deletes
    events, cancel = client.watch_prefix(b"bin/", start_revision=rev + 1)
    seen = []
    for ev in events:
        seen.append((type(ev).__name__, ev.key))
        if len(seen) == 2:
            break
    cancel()
    assert sorted(seen) == sorted([("DeleteEvent", keys[0]), ("DeleteEvent", keys[1])])
    # over the request limit: refused, and the member serves on
    with pytest.raises(Exception) as e:
        client.put(b"bin/" + b"k" * (2 << 20), b"x")
    assert "too large" in str(e.value) or "RESOURCE_EXHAUSTED" in str(e.value)
    assert client.get(keys[3])[0] == keys[3][-8:]
    # (no client.close(): python-etcd3's watch thread would call the closed channel again)


def test_members_agree_after_long_keys(cluster3):
    for i in range(20):
        cluster3.etcdctl("put", P + "z" * (i * 37), "v")
    cluster3.etcdctl("del", P + "z" * 37, P + "z" * 300)
    st = cluster3.status()
    rev = max(s["Status"]["header"]["revision"] for s in st)
    cluster3.etcdctl("compaction", str(rev))
    hk = json.loads(cluster3.etcdctl("endpoint", "hashkv", "-w", "json").stdout)
    assert len({h["HashKV"]["hash"] for h in hk}) == 1, hk


def test_check_datascale(cluster3):
    # etcdctl's own check: 10,000 keys of 1 KiB-ish key-value pairs from 50 clients
    p = cluster3.etcdctl("check", "datascale", "--load=s", timeout=240)
    assert "PASS" in p.stdout, p.stdout + p.stderr
