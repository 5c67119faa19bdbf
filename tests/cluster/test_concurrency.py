"""etcd's Lock and Election services (v3lockpb, v3electionpb) on a 3-member cluster, called
through every member, and the same calls against a real etcd 3.4 with the same answers."""
import json
import random
import signal
import threading
import time
import urllib.request

import etcd3
import grpc
import pytest

from concpb import Conc, dec, one
from conftest import Cluster
from test_etcd_diff import etcd  # noqa: F401 - the fixture: a fresh single etcd member


def endpoints(cluster):
    return ["127.0.0.1:%d" % m.client_port for m in cluster.members]


def kv_client(cluster, i=0):
    return etcd3.client(host="127.0.0.1", port=cluster.members[i].client_port, timeout=10)


def keys_under(cluster, prefix):
    return sorted(m.key for _, m in kv_client(cluster).get_prefix(prefix))


def in_threads(n, fn, timeout):
    """fn(0) .. fn(n - 1), each in its own thread, all at once; fails with what they raised."""
    errors = []

    def run(i):
        try:
            fn(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "clients still running after %ss" % timeout
    assert not errors, errors


def wait_until(pred, timeout, what):
    deadline = time.time() + timeout
    while not pred():
        if time.time() > deadline:
            raise AssertionError("not within %ss: %s" % (timeout, what))
        time.sleep(0.05)


def test_lock_excludes(cluster3):
    """Six clients on the three members add 1 to a counter five times each with a plain read
    and write, each under the lock: no update may be lost."""
    eps = endpoints(cluster3)
    kv_client(cluster3).put("ctr", "0")
    revs = []

    def worker(i):
        c, kv = Conc(eps[i % 3]), kv_client(cluster3, (i + 1) % 3)
        try:
            for _ in range(5):
                key, hdr = c.lock("ctr-lock", timeout=60)
                assert key.startswith(b"ctr-lock/")
                revs.append(hdr["revision"])
                v = int(kv.get("ctr")[0])
                time.sleep(0.01)
                kv.put("ctr", str(v + 1))
                c.unlock(key)
        finally:
            c.close()

    in_threads(6, worker, timeout=120)
    assert int(kv_client(cluster3).get("ctr")[0]) == 30
    assert len(revs) == 30 and len(set(revs)) == 30  # each hold at its own revision
    assert keys_under(cluster3, "ctr-lock/") == []


def test_waiters_giving_up_at_every_step(cluster3):
    """While one client holds the lock, eight clients on the three members ask for it with
    deadlines of 1-50 ms, so that they give up during the lease grant, the txn or the wait:
    each waiter's key is deleted by the server, and only the holder's stays."""
    eps = endpoints(cluster3)
    holder = Conc(eps[0])
    key, _ = holder.lock("gv")
    rnd = random.Random(11)
    deadlines = [[rnd.uniform(0.001, 0.05) for _ in range(10)] for _ in range(8)]

    def worker(i):
        c = Conc(eps[i % 3])
        try:
            for dl in deadlines[i]:
                with pytest.raises(grpc.RpcError) as e:
                    c.lock("gv", timeout=dl)
                assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.value
        finally:
            c.close()

    in_threads(8, worker, timeout=60)
    wait_until(lambda: keys_under(cluster3, "gv/") == [key], 10, "only the holder's key")
    holder.unlock(key)
    holder.close()


def test_lock_churn(cluster3):
    """Eight clients, each with its own lease as clientv3's Session has, on the three members:
    each round either holds the lock for a read-modify-write of a counter, or gives up after
    a random deadline of 1-50 ms. A client that gives up may have been granted the lock just
    as it left (the answer crossed its cancel: etcd's protocol cannot tell), so it unlocks
    its key, name/<lease>, as clientv3's Mutex users do. Every update under the lock counts,
    nothing deadlocks, and no key is left."""
    eps = endpoints(cluster3)
    kv_client(cluster3).put("churn-ctr", "0")
    done = []
    rnd = random.Random(12)
    plans = [[rnd.random() < 0.4 for _ in range(12)] for _ in range(8)]
    deadlines = [[rnd.uniform(0.001, 0.05) for _ in range(12)] for _ in range(8)]

    def worker(i):
        c, kv = Conc(eps[i % 3]), kv_client(cluster3, (i + 2) % 3)
        lease = kv.lease(30)
        mine = b"churn/%x" % lease.id
        try:
            for give_up, dl in zip(plans[i], deadlines[i]):
                try:
                    key, _ = c.lock("churn", lease=lease.id, timeout=dl if give_up else 60)
                except grpc.RpcError as e:
                    assert give_up and e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
                    c.unlock(mine)
                    continue
                assert key == mine
                v = int(kv.get("churn-ctr")[0])
                kv.put("churn-ctr", str(v + 1))
                done.append(1)
                c.unlock(key)
        finally:
            lease.revoke()
            c.close()

    in_threads(8, worker, timeout=120)
    assert len(done) >= sum(not g for p in plans for g in p)
    assert int(kv_client(cluster3).get("churn-ctr")[0]) == len(done)
    assert keys_under(cluster3, "churn/") == []


def test_waiting_lock_given_up_leaves_no_key(cluster3):
    eps = endpoints(cluster3)
    a, b = Conc(eps[0]), Conc(eps[1])
    key, _ = a.lock("gu")
    f = b.lock_future("gu", timeout=1.0)
    with pytest.raises(grpc.RpcError) as e:
        f.result()
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # the waiter's key is deleted once its client is gone; the holder's stays
    wait_until(lambda: keys_under(cluster3, "gu/") == [key], 5, "only the holder's key")
    a.unlock(key)
    k2, _ = Conc(eps[2]).lock("gu", timeout=5)  # free at once
    assert keys_under(cluster3, "gu/") == [k2]
    a.close()
    b.close()


def test_lock_with_a_lease(cluster3):
    """The key is name/<lease in hex>; revoking the holder's lease hands the lock on."""
    eps = endpoints(cluster3)
    kv = kv_client(cluster3)
    lease = kv.lease(30)
    a, b = Conc(eps[1]), Conc(eps[2])
    key, _ = a.lock("wl", lease=lease.id)
    assert key == b"wl/%x" % lease.id
    # the same lease again: the same key, held again at once
    assert a.lock("wl", lease=lease.id, timeout=5)[0] == key
    f = b.lock_future("wl", timeout=20)
    time.sleep(0.5)
    assert not f.done()
    lease.revoke()
    r = f.result()
    assert r
    assert len(keys_under(cluster3, "wl/")) == 1
    with pytest.raises(grpc.RpcError) as e:
        a.lock("wl2", lease=0x7777, timeout=5)
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    assert "requested lease not found" in e.value.details()
    a.close()
    b.close()


def test_long_names(cluster3):
    """Names of any length, as etcd takes them (cord refused names over 3,000 bytes, and its
    store keys over 495 bytes): a lock and an election on 5,000-byte names whose keys share
    their first 479 bytes with a neighbour's."""
    eps = endpoints(cluster3)
    a, b = Conc(eps[0]), Conc(eps[1])
    name = "ln/" + "n" * 5000
    other = name + "x"  # its keys fall inside name's key range but not under name + "/"
    key, _ = a.lock(name)
    assert key.startswith(name.encode() + b"/")
    okey, _ = b.lock(other, timeout=5)  # not held by a's lock
    f = b.lock_future(name, timeout=20)
    time.sleep(0.5)
    assert not f.done()
    a.unlock(key)
    bkey = one(dec(f.result()), 2, b"")
    assert bkey.startswith(name.encode() + b"/") and bkey != key
    b.unlock(bkey)
    b.unlock(okey)
    la, _ = a.campaign(name, "v1")
    assert la["name"] == name.encode()
    kv, _ = b.leader(name)
    assert kv["value"] == b"v1" and kv["key"] == la["key"]
    a.resign(la)
    assert keys_under(cluster3, "ln/") == []
    a.close()
    b.close()


def test_lock_whose_session_expired(cluster3):
    """A waiter whose lease expires while it waits does not get the lock."""
    eps = endpoints(cluster3)
    kv = kv_client(cluster3)
    held = kv.lease(30)
    short = kv.lease(2)
    a, b = Conc(eps[0]), Conc(eps[1])
    key, _ = a.lock("se", lease=held.id)
    f = b.lock_future("se", lease=short.id, timeout=30)
    wait_until(lambda: len(keys_under(cluster3, "se/")) == 2, 5, "the waiter's key")
    wait_until(lambda: len(keys_under(cluster3, "se/")) == 1, 15, "the waiter's key expires")
    a.unlock(key)
    with pytest.raises(grpc.RpcError) as e:
        f.result()
    assert e.value.code() == grpc.StatusCode.UNKNOWN
    assert e.value.details() == "mutex: session is expired"
    held.revoke()
    a.close()
    b.close()


def test_lock_waiter_outlives_the_leader(tmp_path):
    """The leader is killed while a Lock waits on a follower: once the holder unlocks through
    the new leader's cluster, the waiter holds the lock."""
    c = Cluster(tmp_path, 3)
    c.start()
    try:
        st = c.status()
        leader_id = st[0]["Status"]["leader"]
        ids = {s["Endpoint"]: s["Status"]["header"]["member_id"] for s in st}
        lead = next(m for m in c.members if ids[m.client_url] == leader_id)
        f1, f2 = [m for m in c.members if m is not lead]
        holder, waiter = Conc("127.0.0.1:%d" % f1.client_port), Conc("127.0.0.1:%d" % f2.client_port)
        key, _ = holder.lock("lf")
        fut = waiter.lock_future("lf", timeout=60)
        time.sleep(0.5)
        assert not fut.done()
        lead.stop(sig=signal.SIGKILL)
        wait_until(lambda: f1.healthy() and f2.healthy(), 15, "a new leader")
        deadline = time.time() + 15
        while True:  # the first try may meet the election
            try:
                holder.unlock(key)
                break
            except grpc.RpcError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        r = one(dec(fut.result()), 2)
        assert r.startswith(b"lf/") and r != key
        kv = etcd3.client(host="127.0.0.1", port=f1.client_port, timeout=10)
        assert [m.key for _, m in kv.get_prefix("lf/")] == [r]
        lead.start(c.initial)
        c.wait_healthy(30)
        kv3 = etcd3.client(host="127.0.0.1", port=lead.client_port, timeout=10)
        wait_until(lambda: [m.key for _, m in kv3.get_prefix("lf/", serializable=True)] == [r],
                   15, "the restarted member has the waiter's key")
        holder.close()
        waiter.close()
    finally:
        c.stop()


def test_election(cluster3):
    eps = endpoints(cluster3)
    a, b, o = Conc(eps[0]), Conc(eps[1]), Conc(eps[2])
    with pytest.raises(grpc.RpcError) as e:
        o.leader("el")
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.UNKNOWN, "election: no leader")

    la, ha = a.campaign("el", "a1")
    assert la["name"] == b"el" and la["key"] == b"el/%x" % la["lease"]
    assert la["rev"] == ha["revision"]
    kv, _ = o.leader("el")
    assert (kv["key"], kv["value"], kv["create_revision"]) == (la["key"], b"a1", la["rev"])

    obs = o.observe("el", timeout=60)
    assert Conc.observed(next(obs))[0]["value"] == b"a1"
    a.proclaim(la, "a2")
    assert Conc.observed(next(obs))[0]["value"] == b"a2"
    assert o.leader("el")[0]["value"] == b"a2"

    fb = b.campaign_future("el", "b1", timeout=30)
    time.sleep(0.5)
    assert not fb.done()  # waits for a
    a.resign(la)
    lb, hb = Conc.campaign_result(fb.result())
    assert lb["rev"] > la["rev"] and lb["key"] != la["key"]
    seen = Conc.observed(next(obs))[0]
    assert (seen["key"], seen["value"]) == (lb["key"], b"b1")

    # a's hold is gone: proclaiming with it is refused, resigning again does nothing
    with pytest.raises(grpc.RpcError) as e:
        a.proclaim(la, "stale")
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.UNKNOWN, "election: not leader")
    assert a.resign(la)["revision"] >= hb["revision"]
    assert o.leader("el")[0]["value"] == b"b1"
    # campaigning again with b's lease while b leads: the same key, value proclaimed anew
    lb2, _ = a.campaign("el", "b2", lease=lb["lease"])
    assert (lb2["key"], lb2["rev"]) == (lb["key"], lb["rev"])
    assert Conc.observed(next(obs))[0]["value"] == b"b2"
    obs.cancel()

    call = o.ch.unary_unary("/v3electionpb.Election/Resign", request_serializer=lambda x: x,
                            response_deserializer=lambda x: x)
    with pytest.raises(grpc.RpcError) as e:
        call(b"", timeout=5)
    assert e.value.details() == '"leader" field must be provided'
    b.resign(lb)
    assert keys_under(cluster3, "el/") == []
    for c in (a, b, o):
        c.close()


def test_observe_waits_for_a_first_leader(cluster3):
    eps = endpoints(cluster3)
    o, a = Conc(eps[1]), Conc(eps[0])
    obs = o.observe("ow", timeout=30)
    threading.Timer(0.5, lambda: a.campaign("ow", "first")).start()
    kv, hdr = Conc.observed(next(obs))
    assert kv["value"] == b"first"
    assert hdr["revision"] == kv["mod_revision"]
    obs.cancel()
    o.close()


def test_observe_ignores_deletes_before_a_leader(cluster3):
    """The watch for a first leader starts at the revision of the read that found none; a
    delete at that revision is not a leader (etcd's observe skips it too)."""
    eps = endpoints(cluster3)
    kv = kv_client(cluster3)
    kv.put("od/x", "not a campaign")
    kv.delete("od/x")  # the newest revision: a delete under the prefix
    o, a = Conc(eps[2]), Conc(eps[0])
    obs = o.observe("od", timeout=30)
    threading.Timer(0.5, lambda: a.campaign("od", "v")).start()
    assert Conc.observed(next(obs))[0]["value"] == b"v"
    obs.cancel()
    o.close()


def test_gateway_routes(cluster3):
    url = cluster3.members[1].client_url

    def post(path, body):
        req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    st, r = post("/v3/lock/lock", {"name": "Z3c="})  # "gw"
    assert st == 200 and r["key"].startswith("Z3cv")  # "gw/"
    assert post("/v3/lock/unlock", {"key": r["key"]})[0] == 200
    st, r = post("/v3/election/leader", {"name": "bm9uZQ=="})
    assert (st, r["code"], r["error"]) == (500, 2, "election: no leader")


def session(endpoint):
    """A fixed sequence of Lock and Election calls without waiting; answers with the ids
    (lease ids, keys made of them) masked."""
    c = Conc(endpoint)
    out = []

    def rec(name, f):
        try:
            v = f()
        except grpc.RpcError as e:
            v = ("error", str(e.code()), e.details())
        out.append((name, v))

    st = {}
    rec("lock", lambda: (lambda k, h: (st.update(k=k), k.split(b"/")[0])[1])(*c.lock("s")))
    rec("unlock", lambda: type(c.unlock(st["k"])).__name__)
    rec("unlock absent", lambda: type(c.unlock(b"s/none")).__name__)
    rec("unlock empty key", lambda: c.unlock(b""))
    rec("lock unknown lease", lambda: c.lock("s2", lease=0x1234))
    rec("leader none", lambda: c.leader("e"))
    rec("campaign", lambda: (lambda lk, h: (st.update(lk=lk), lk["name"], lk["rev"] == h["revision"])[1:])(
        *c.campaign("e", "v1")))
    rec("leader", lambda: (lambda kv, h: (kv["value"], kv["version"], kv["lease"] == st["lk"]["lease"]))(
        *c.leader("e")))
    rec("proclaim", lambda: c.proclaim(st["lk"], "v2")["revision"] > st["lk"]["rev"])
    rec("leader proclaimed", lambda: (lambda kv, h: (kv["value"], kv["version"]))(*c.leader("e")))
    rec("proclaim stale", lambda: c.proclaim(dict(st["lk"], rev=st["lk"]["rev"] + 100), "x"))
    rec("resign", lambda: type(c.resign(st["lk"])).__name__)
    rec("leader after resign", lambda: c.leader("e"))
    c.close()
    return out


def test_same_answers_as_etcd(etcd, tmp_path):  # noqa: F811 - the imported fixture
    c = Cluster(tmp_path / "cord", 1)
    c.start()
    try:
        ours = session("127.0.0.1:%d" % c.members[0].client_port)
    finally:
        c.stop()
    theirs = session(etcd.replace("http://", ""))
    assert any(v[0] == "error" for _, v in ours if isinstance(v, tuple) and v)
    diffs = [(a, b) for a, b in zip(theirs, ours) if a != b]
    assert not diffs, "\n".join("%s\n  etcd: %r\n  cord: %r" % (a[0], a[1], b[1]) for a, b in diffs)
