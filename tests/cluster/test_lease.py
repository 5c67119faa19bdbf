"""Leases, locks and elections through etcdctl and python3-etcd3."""
import os
import re
import subprocess
import time

import pytest


@pytest.fixture(params=["cluster1", "cluster3"])
def c(request):
    return request.getfixturevalue(request.param)


def grant(c, ttl, endpoints=None):
    out = c.etcdctl("lease", "grant", str(ttl), endpoints=endpoints).stdout
    m = re.match(r"lease ([0-9a-f]+) granted with TTL\((\d+)s\)", out)
    assert m, out
    return m.group(1), int(m.group(2))


def leader_endpoint(c):
    return c.leader_endpoint()


def test_grant_timetolive_list_revoke(c):
    lid, ttl = grant(c, 30)
    assert ttl == 30
    c.etcdctl("put", "--lease", lid, "leased/a", "1")
    # every member answers with the leader's deadline (a follower asks it through the log)
    for member in c.members:
        out = c.etcdctl("lease", "timetolive", lid, "--keys", endpoints=member.client_url).stdout
        m = re.match(r"lease %s granted with TTL\(30s\), remaining\((\d+)s\), attached keys\(\[leased/a\]\)" % lid, out)
        assert m, out
        assert 20 <= int(m.group(1)) <= 30
    assert lid in c.etcdctl("lease", "list").stdout
    assert c.etcdctl("lease", "revoke", lid).stdout.strip() == "lease %s revoked" % lid
    assert c.etcdctl("get", "leased/a").stdout == ""
    out = c.etcdctl("lease", "timetolive", lid).stdout
    assert "already expired" in out


def test_put_with_unknown_lease_fails(c):
    p = c.etcdctl("put", "--lease", "1234abcd", "k", "v", check=False)
    assert p.returncode != 0 and "requested lease not found" in p.stderr


def test_expiry_deletes_keys_in_one_revision(c):
    lid, ttl = grant(c, 2)
    c.etcdctl("put", "--lease", lid, "exp/a", "1")
    c.etcdctl("put", "--lease", lid, "exp/b", "2")
    deadline = time.time() + 15
    while time.time() < deadline and c.etcdctl("get", "exp/", "--prefix", "--keys-only").stdout:
        time.sleep(0.2)
    assert c.etcdctl("get", "exp/", "--prefix").stdout == ""
    assert lid not in c.etcdctl("lease", "list").stdout


def test_keep_alive_through_any_member(c):
    lid, ttl = grant(c, 2)
    c.etcdctl("put", "--lease", lid, "ka", "1")
    for _ in range(6):  # 3 seconds of keep-alives through the last member (a follower in c3)
        out = c.etcdctl("lease", "keep-alive", "--once", lid,
                        endpoints=c.members[-1].client_url).stdout
        assert "keepalived with TTL(2)" in out, out
        time.sleep(0.5)
    assert c.etcdctl("get", "ka", "--print-value-only").stdout.strip() == "1"


def test_lock_is_exclusive(c):
    env = dict(os.environ, ETCDCTL_API="3")
    holder = subprocess.Popen(["etcdctl", "--endpoints", c.endpoints, "lock", "mylock"],
                              stdout=subprocess.PIPE, text=True, env=env)
    first = holder.stdout.readline().strip()
    assert first.startswith("mylock/")
    # a second locker must wait while the first holds the lock
    waiter = subprocess.Popen(["etcdctl", "--endpoints", c.endpoints, "lock", "mylock", "echo",
                               "got-it"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        out, _ = waiter.communicate(timeout=3)
    except subprocess.TimeoutExpired:
        waiter.kill()
        out, _ = waiter.communicate(timeout=10)
    assert "got-it" not in out
    holder.terminate()
    holder.wait(timeout=10)
    p = subprocess.run(["etcdctl", "--endpoints", c.endpoints, "lock", "mylock", "echo",
                        "got-it"], capture_output=True, text=True, env=env, timeout=30)
    assert "got-it" in p.stdout


def test_election(c):
    env = dict(os.environ, ETCDCTL_API="3")
    leader = subprocess.Popen(["etcdctl", "--endpoints", c.endpoints, "elect", "myelection",
                               "proposal-1"], stdout=subprocess.PIPE, text=True, env=env)
    first = leader.stdout.readline().strip()
    assert first.startswith("myelection/")
    assert leader.stdout.readline().strip() == "proposal-1"
    p = subprocess.Popen(["etcdctl", "--endpoints", c.endpoints, "elect", "-l", "myelection"],
                         stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip().startswith("myelection/")
    assert p.stdout.readline().strip() == "proposal-1"
    p.terminate()
    leader.terminate()
    p.wait(timeout=10)
    leader.wait(timeout=10)


def test_python_etcd3_lease(cluster1):
    etcd3 = pytest.importorskip("etcd3")
    client = etcd3.client(host="127.0.0.1", port=cluster1.members[0].client_port, timeout=5)
    lease = client.lease(10)
    client.put("pyl", "v", lease=lease)
    assert lease.remaining_ttl <= 10 and lease.granted_ttl == 10
    assert [k for k in lease.keys] == [b"pyl"]
    lease.refresh()
    lease.revoke()
    assert client.get("pyl")[0] is None


def test_python_etcd3_refresh_through_every_member(cluster3):
    """python-etcd3 half-closes its keep-alive stream right after the request: the answer
    must still come, also from a follower, whose answer comes back through the log."""
    etcd3 = pytest.importorskip("etcd3")
    lease = etcd3.client(host="127.0.0.1", port=cluster3.members[0].client_port,
                         timeout=5).lease(30)
    for m in cluster3.members:
        client = etcd3.client(host="127.0.0.1", port=m.client_port, timeout=5)
        answers = list(client.refresh_lease(lease.id))
        assert len(answers) == 1 and answers[0].ID == lease.id and answers[0].TTL == 30, (
            m.name, answers)
    lease.revoke()


def test_keep_alive_of_a_lease_the_leader_let_expire(tmp_path):
    """A keep-alive of a lease whose deadline passed on the leader reports it gone,
    through every member. The leader's revokes are held back (a failpoint standing in
    for refused proposals), so each member's table still has the lease: a follower
    must answer with the leader's verdict, not with its own table's granted TTL."""
    from conftest import Cluster
    c = Cluster(tmp_path, 3)
    c.start(env={"CORD_FAILPOINTS": "lease-before-expiry-revoke=error"})
    try:
        lid, ttl = grant(c, 2)
        live, _ = grant(c, 30)
        c.etcdctl("put", "--lease", lid, "held", "1")
        time.sleep(ttl + 1.5)
        assert c.etcdctl("get", "held", "--print-value-only").stdout.strip() == "1", \
            "the revoke was not held back"
        leader = c.leader_endpoint()
        for member in c.members:
            role = "leader" if member.client_url == leader else "follower"
            p = c.etcdctl("lease", "keep-alive", "--once", lid, endpoints=member.client_url,
                          check=False)
            assert "keepalived" not in p.stdout, (role, p.stdout)
            assert p.returncode != 0 and "not found" in p.stderr, (role, p.stdout, p.stderr)
            # a lease that is alive is still renewed through the same path
            out = c.etcdctl("lease", "keep-alive", "--once", live,
                            endpoints=member.client_url).stdout
            assert "keepalived with TTL(30)" in out, (role, out)
    finally:
        c.stop()
