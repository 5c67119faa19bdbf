"""KV service through the stock etcdctl (3.4) and python3-etcd3, on 1 and 3 members."""
import json

import pytest


@pytest.fixture(params=["cluster1", "cluster3"])
def c(request):
    return request.getfixturevalue(request.param)


def test_put_get(c):
    assert c.etcdctl("put", "foo", "bar").stdout.strip() == "OK"
    assert c.etcdctl("get", "foo").stdout.splitlines() == ["foo", "bar"]
    assert c.etcdctl("get", "foo", "--print-value-only").stdout.splitlines() == ["bar"]


def test_get_missing_prints_nothing(c):
    p = c.etcdctl("get", "no-such-key")
    assert p.stdout == ""


def test_prefix_limit_sort_keys_only(c):
    for i in range(5):
        c.etcdctl("put", "pfx/%d" % i, "v%d" % i)
    out = c.etcdctl("get", "pfx/", "--prefix", "--keys-only").stdout.split()
    assert out == ["pfx/%d" % i for i in range(5)]
    out = c.etcdctl("get", "pfx/", "--prefix", "--limit", "2").stdout.splitlines()
    assert out == ["pfx/0", "v0", "pfx/1", "v1"]
    out = c.etcdctl("get", "pfx/", "--prefix", "--sort-by", "KEY", "--order", "DESCEND",
                    "--keys-only").stdout.split()
    assert out == ["pfx/%d" % i for i in reversed(range(5))]
    out = c.etcdctl("get", "pfx/3", "--from-key", "--keys-only").stdout.split()
    assert out[:2] == ["pfx/3", "pfx/4"]


def test_json_output_and_revisions(c):
    c.etcdctl("put", "rev-key", "one")
    first = json.loads(c.etcdctl("get", "rev-key", "-w", "json").stdout)
    c.etcdctl("put", "rev-key", "two")
    second = json.loads(c.etcdctl("get", "rev-key", "-w", "json").stdout)
    kv1, kv2 = first["kvs"][0], second["kvs"][0]
    assert kv2["version"] == kv1["version"] + 1
    assert kv2["create_revision"] == kv1["create_revision"]
    assert kv2["mod_revision"] > kv1["mod_revision"]
    assert second["header"]["revision"] == kv2["mod_revision"]
    assert second["header"]["cluster_id"] != 0 and second["header"]["member_id"] != 0
    old = c.etcdctl("get", "rev-key", "--rev", str(kv1["mod_revision"]), "--print-value-only")
    assert old.stdout.strip() == "one"


def test_delete_prefix_prev_kv(c):
    c.etcdctl("put", "del/a", "1")
    c.etcdctl("put", "del/b", "2")
    out = c.etcdctl("del", "del/", "--prefix", "--prev-kv").stdout.splitlines()
    assert out == ["2", "del/a", "1", "del/b", "2"]
    assert c.etcdctl("get", "del/", "--prefix").stdout == ""
    assert c.etcdctl("del", "del/a").stdout.strip() == "0"


def test_txn_from_stdin(c):
    c.etcdctl("put", "txn-key", "x")
    script = 'value("txn-key") = "x"\n\nput txn-key y\n\nput txn-key z\n\n'
    out = c.etcdctl("txn", input=script).stdout.splitlines()
    assert out == ["SUCCESS", "", "OK"]
    assert c.etcdctl("get", "txn-key", "--print-value-only").stdout.strip() == "y"
    out = c.etcdctl("txn", input=script).stdout.splitlines()
    assert out == ["FAILURE", "", "OK"]
    assert c.etcdctl("get", "txn-key", "--print-value-only").stdout.strip() == "z"


def test_compaction(c):
    c.etcdctl("put", "cmp", "1")
    r1 = json.loads(c.etcdctl("get", "cmp", "-w", "json").stdout)["kvs"][0]["mod_revision"]
    c.etcdctl("put", "cmp", "2")
    out = c.etcdctl("compaction", str(r1 + 1)).stdout.strip()
    assert out == "compacted revision %d" % (r1 + 1)
    p = c.etcdctl("get", "cmp", "--rev", str(r1), check=False)
    assert p.returncode != 0
    assert "required revision has been compacted" in p.stderr


def test_serializable_read(c):
    c.etcdctl("put", "ser", "v")
    out = c.etcdctl("get", "ser", "--consistency=s", "--print-value-only").stdout.strip()
    # a serializable read may lag on a follower, but the member that took the write has it
    assert out in ("v", "")


def test_bad_input(c):
    p = c.etcdctl("put", "", "v", check=False)
    assert p.returncode != 0 and "key is not provided" in p.stderr
    p = c.etcdctl("put", "big", input="x" * (1600 * 1024), check=False)
    assert p.returncode != 0 and "request is too large" in p.stderr
    ops = "".join("put k%d v\n" % i for i in range(129))
    p = c.etcdctl("txn", input="\n" + ops + "\n\n", check=False)
    assert p.returncode != 0 and "too many operations in txn request" in p.stderr
    p = c.etcdctl("txn", input="\nput dup 1\nput dup 2\n\n\n", check=False)
    assert p.returncode != 0 and "duplicate key given in txn request" in p.stderr
    # the member keeps serving
    assert c.etcdctl("put", "after-bad", "ok").stdout.strip() == "OK"


def test_endpoint_health_status_hashkv(c):
    out = c.etcdctl("endpoint", "health").stderr + c.etcdctl("endpoint", "health").stdout
    assert "is healthy" in out
    st = c.status()
    assert len(st) == len(c.members)
    # every member reaches the same revision with the same HashKV
    import time
    deadline = time.time() + 10
    while True:
        hk = json.loads(c.etcdctl("endpoint", "hashkv", "-w", "json").stdout)
        assert len(hk) == len(c.members)
        hashes = {(h["HashKV"]["header"]["revision"], h["HashKV"]["hash"]) for h in hk}
        if len(hashes) == 1 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert len(hashes) == 1, hk


def test_member_list(c):
    out = json.loads(c.etcdctl("member", "list", "-w", "json").stdout)
    names = sorted(m["name"] for m in out["members"])
    assert names == sorted(m.name for m in c.members)


def test_python_etcd3_client(c):
    etcd3 = pytest.importorskip("etcd3")
    m = c.members[-1]
    client = etcd3.client(host="127.0.0.1", port=m.client_port, timeout=5)
    client.put("py/a", "1")
    value, meta = client.get("py/a")
    assert value == b"1" and meta.key == b"py/a"
    ok, _ = client.transaction(compare=[client.transactions.value("py/a") == "1"],
                               success=[client.transactions.put("py/a", "2")],
                               failure=[])
    assert ok
    assert client.get("py/a")[0] == b"2"
    assert client.delete("py/a")
    assert client.get("py/a")[0] is None


def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def test_deeply_nested_txn_is_refused_and_member_survives(cluster1):
    grpc = pytest.importorskip("grpc")
    # TxnRequest{success: RequestOp{request_txn: TxnRequest{success: ...}}}, 60000 levels
    inner = b""
    for _ in range(60000):
        op = b"\x22" + _varint(len(inner)) + inner        # RequestOp.request_txn = 4
        inner = b"\x12" + _varint(len(op)) + op           # TxnRequest.success = 2
    m = cluster1.members[0]
    ch = grpc.insecure_channel("127.0.0.1:%d" % m.client_port)
    call = ch.unary_unary("/etcdserverpb.KV/Txn", request_serializer=lambda b: b,
                          response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        call(inner, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ch.close()
    assert cluster1.etcdctl("put", "still-alive", "1").stdout.strip() == "OK"


def test_garbage_protobuf_gets_an_error(cluster1):
    grpc = pytest.importorskip("grpc")
    m = cluster1.members[0]
    ch = grpc.insecure_channel("127.0.0.1:%d" % m.client_port)
    for method in ("Range", "Put", "DeleteRange", "Txn", "Compact"):
        call = ch.unary_unary("/etcdserverpb.KV/" + method, request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as e:
            call(b"\xff\xff\xff\xff\x0f garbage", timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown = ch.unary_unary("/etcdserverpb.KV/NoSuchMethod", request_serializer=lambda b: b,
                             response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        unknown(b"", timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    ch.close()
    assert cluster1.etcdctl("get", "still-alive", "--print-value-only").stdout.strip() in ("1", "")
