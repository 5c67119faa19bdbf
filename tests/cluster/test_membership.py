"""Membership with etcdctl: add a learner that catches up through a snapshot, promote it,
remove a member (which then stops), update a member's peer URL."""
import json
import re
import subprocess
import time

from conftest import CORD, Cluster, Member, free_ports


def status(c):
    return c.status()


def leader_endpoint(c):
    return c.leader_endpoint()


def wait_for(pred, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def add_learner(c, tmp_path, endpoint, extra=()):
    """etcdctl member add m3 --learner through `endpoint`, then start m3 and wait until it
    serves. Returns (the member, its id in hex, etcdctl's output)."""
    cport, pport = free_ports(2)
    new = Member("m3", cport, pport, str(tmp_path / "m3.cord"))
    out = c.etcdctl("member", "add", "m3", "--learner", "--peer-urls", new.peer_url,
                    endpoints=endpoint).stdout
    m = re.search(r"Member\s+([0-9a-f]+) added to cluster\s+([0-9a-f]+)", out)
    assert m, out
    new.start(c.initial + ",m3=" + new.peer_url, state="existing", extra=extra)
    c.members.append(new)
    assert wait_for(new.healthy), open(new.log_path).read()[-3000:]
    return new, m.group(1), out


def test_add_learner_promote_remove(tmp_path):
    c = Cluster(tmp_path, 3)
    for m in c.members:
        pass
    for m in c.members:
        m.start(c.initial, extra=("--snapshot-count", "20"))
    c.wait_healthy()
    try:
        for i in range(120):  # several snapshots: the newcomer needs one
            c.etcdctl("put", "mk/%03d" % i, "v%d" % i)
        new, new_id, out = add_learner(c, tmp_path, leader_endpoint(c),
                                       extra=("--snapshot-count", "20"))
        assert 'ETCD_INITIAL_CLUSTER_STATE="existing"' in out
        ep = new.client_url
        assert wait_for(lambda: c.etcdctl("get", "mk/", "--prefix", "--keys-only",
                                           "--consistency=s", endpoints=ep).stdout.split()
                        == ["mk/%03d" % i for i in range(120)])
        members = json.loads(c.etcdctl("member", "list", "-w", "json").stdout)["members"]
        learner = [x for x in members if x.get("isLearner")]
        assert len(learner) == 1 and "%x" % learner[0]["ID"] == new_id
        out = c.etcdctl("member", "promote", new_id, endpoints=leader_endpoint(c)).stdout
        # etcdctl prints ids with %16x: short ids are padded with spaces
        assert re.search(r"Member\s+%s promoted in cluster" % new_id, out), out
        members = json.loads(c.etcdctl("member", "list", "-w", "json").stdout)["members"]
        assert len(members) == 4 and not any(x.get("isLearner") for x in members)
        # the newcomer publishes its name and client URL through the log once it runs
        assert wait_for(lambda: {x.get("name") for x in json.loads(
            c.etcdctl("member", "list", "-w", "json").stdout)["members"]}
            == {"m0", "m1", "m2", "m3"})
        # remove a follower: it stops serving
        st = status(c)
        lid = st[0]["Status"]["leader"]
        victim_id = next(s["Status"]["header"]["member_id"] for s in st
                         if s["Status"]["header"]["member_id"] != lid)
        victim_ep = next(s["Endpoint"] for s in st
                         if s["Status"]["header"]["member_id"] == victim_id)
        victim = next(x for x in c.members if x.client_url == victim_ep)
        out = c.etcdctl("member", "remove", "%x" % victim_id,
                        endpoints=leader_endpoint(c)).stdout
        assert re.search(r"Member\s+%x removed from cluster" % victim_id, out), out
        assert wait_for(lambda: victim.proc.poll() is not None, 20)
        victim.stop()
        c.members.remove(victim)
        assert c.etcdctl("put", "after-remove", "1").stdout.strip() == "OK"
        members = json.loads(c.etcdctl("member", "list", "-w", "json").stdout)["members"]
        assert len(members) == 3
    finally:
        c.stop()


def test_membership_through_followers(tmp_path):
    """A follower carries membership calls to the leader (etcd forwards them too), so that
    etcdctl with every endpoint does not fail when it picks a follower."""
    c = Cluster(tmp_path, 3)
    c.start()
    try:
        st = status(c)
        lid = st[0]["Status"]["leader"]
        f1, f2 = [s["Endpoint"] for s in st if s["Status"]["header"]["member_id"] != lid]
        new, new_id, _ = add_learner(c, tmp_path, f1)
        # refusals come back from the leader with its status and text
        p = c.etcdctl("member", "remove", "1234", endpoints=f2, check=False)
        assert p.returncode != 0 and "etcdserver: member not found" in p.stderr, p.stderr
        p = c.etcdctl("member", "add", "x", "--peer-urls", new.peer_url, endpoints=f2,
                      check=False)
        assert p.returncode != 0 and "etcdserver: Peer URLs already exists" in p.stderr
        p = c.etcdctl("member", "promote", "%x" % lid, endpoints=f1, check=False)
        assert p.returncode != 0 and "can only promote a learner member" in p.stderr

        def promoted():
            p = c.etcdctl("member", "promote", new_id, endpoints=f2, check=False)
            assert p.returncode == 0 or "in sync with leader" in p.stderr, p.stderr
            return p.returncode == 0 and re.search(r"Member\s+%s promoted" % new_id, p.stdout)
        assert wait_for(promoted)
        members = json.loads(c.etcdctl("member", "list", "-w", "json").stdout)["members"]
        assert len(members) == 4 and not any(x.get("isLearner") for x in members)
        out = c.etcdctl("member", "remove", new_id, endpoints=f1).stdout
        assert re.search(r"Member\s+%s removed from cluster" % new_id, out), out
        assert wait_for(lambda: new.proc.poll() is not None, 20)
        new.stop()
        c.members.remove(new)
        # every endpoint at once: whichever etcdctl picks, the change is made
        for i in range(4):
            out = c.etcdctl("member", "add", "l%d" % i, "--learner", "--peer-urls",
                            "http://127.0.0.1:%d" % free_ports(1)[0]).stdout
            lid_new = re.search(r"Member\s+([0-9a-f]+) added", out).group(1)
            out = c.etcdctl("member", "remove", lid_new).stdout
            assert "removed from cluster" in out, out
        assert len(json.loads(c.etcdctl("member", "list", "-w", "json").stdout)["members"]) == 3
        assert c.etcdctl("put", "after", "1").stdout.strip() == "OK"
    finally:
        c.stop()


def test_membership_errors(tmp_path):
    c = Cluster(tmp_path, 1)
    c.start()
    try:
        p = c.etcdctl("member", "remove", "1234", check=False)
        assert p.returncode != 0 and "member not found" in p.stderr
        p = c.etcdctl("member", "add", "x", "--peer-urls", c.members[0].peer_url, check=False)
        assert p.returncode != 0 and "Peer URLs already exists" in p.stderr
        p = c.etcdctl("member", "promote", "%x" % json.loads(
            c.etcdctl("member", "list", "-w", "json").stdout)["members"][0]["ID"], check=False)
        assert p.returncode != 0 and "can only promote a learner member" in p.stderr
    finally:
        c.stop()


def test_many_members_come_and_go(tmp_path):
    """More distinct members over time than the member table has slots: every
    new member's address must still be recorded and listed (the nemesis found
    the table full of long-removed members, and new members without addresses)."""
    c = Cluster(tmp_path, 1)
    c.start()
    try:
        for i in range(24):
            url = "http://127.0.0.1:%d" % (40000 + i)
            # a removed member is followed for a while (until it learns it is out or
            # 20 election timeouts pass); while all slots hold such members, an add
            # is refused with a clear error rather than losing the address
            deadline = time.time() + 30
            while True:
                p = c.etcdctl("member", "add", "l%d" % i, "--learner", "--peer-urls", url, check=False)
                if p.returncode == 0 or time.time() > deadline:
                    break
                assert "too many members" in p.stderr, p.stderr
                time.sleep(0.5)
            out = p.stdout
            mid = re.search(r"Member\s+([0-9a-f]+) added", out).group(1)
            members = json.loads(c.etcdctl("member", "list", "-w", "json").stdout)["members"]
            listed = {"%x" % x["ID"]: x.get("peerURLs", []) for x in members}
            assert listed.get(mid) == [url], (i, listed)
            c.etcdctl("member", "remove", mid)
        c.members[0].stop()
        c.members[0].start(c.initial)
        c.wait_healthy()
        members = json.loads(c.etcdctl("member", "list", "-w", "json").stdout)["members"]
        assert [x["name"] for x in members] == ["m0"], members
        assert c.members[0].peer_url in members[0]["peerURLs"]
    finally:
        c.stop()


def test_member_back_after_every_member_it_knew_was_replaced(tmp_path):
    """m2 is down while m0 and m1 are replaced by m3 and m4. When it comes back, its
    member table names only departed members: it can reach the new ones only because
    their HELLO carries their peer URL. It must catch up, and then be the quorum's
    second member when m3 stops."""
    c = Cluster(tmp_path, 3)
    c.start()
    m0, m1, m2 = c.members
    try:
        c.etcdctl("put", "k/0", "before")
        m2.stop()
        live = [m0, m1]

        def endpoints():
            return ",".join(m.client_url for m in live)

        def leader():  # membership changes go to the leader
            for _ in range(100):
                p = c.etcdctl("endpoint", "status", "-w", "json", endpoints=endpoints(),
                              check=False)
                if p.returncode == 0:
                    for s in json.loads(p.stdout):
                        if s["Status"]["header"]["member_id"] == s["Status"].get("leader"):
                            return s["Endpoint"]
                time.sleep(0.2)
            raise AssertionError("no leader among " + endpoints())

        def replace(old, name):
            cport, pport = free_ports(2)
            new = Member(name, cport, pport, str(tmp_path / (name + ".cord")))
            # with m2 down a voter cannot be added (--strict-reconfig-check): a learner is
            out = c.etcdctl("member", "add", name, "--learner", "--peer-urls", new.peer_url,
                            endpoints=leader()).stdout
            new_id = re.search(r"Member\s+([0-9a-f]+) added", out).group(1)
            initial = re.search(r'ETCD_INITIAL_CLUSTER="([^"]+)"', out).group(1)
            new.start(initial, state="existing")
            live.append(new)
            c.members.append(new)
            assert wait_for(new.healthy, 30), open(new.log_path).read()[-3000:]
            assert wait_for(lambda: c.etcdctl("member", "promote", new_id, endpoints=leader(),
                                              check=False).returncode == 0, 30)
            old_id = next(x["ID"] for x in json.loads(c.etcdctl(
                "member", "list", "-w", "json", endpoints=endpoints()).stdout)["members"]
                if x.get("name") == old.name)
            c.etcdctl("member", "remove", "%x" % old_id, endpoints=leader())
            live.remove(old)
            assert wait_for(lambda: old.proc.poll() is not None, 20)
            old.stop()
            return new

        m3 = replace(m0, "m3")
        c.etcdctl("put", "k/1", "m0 replaced", endpoints=endpoints())
        m4 = replace(m1, "m4")
        c.etcdctl("put", "k/2", "m1 replaced", endpoints=endpoints())
        m2.start(c.initial)  # the table in its store: m0, m1, m2
        assert wait_for(lambda: c.etcdctl(
            "get", "k/2", "--print-value-only", "--consistency=s", endpoints=m2.client_url,
            check=False).stdout.strip() == "m1 replaced", 30), open(m2.log_path).read()[-3000:]
        m3.stop()
        live.remove(m3)
        live.append(m2)
        assert wait_for(lambda: c.etcdctl("put", "k/3", "m3 stopped", endpoints=endpoints(),
                                          check=False).returncode == 0, 30)
        names = {x.get("name") for x in json.loads(c.etcdctl(
            "member", "list", "-w", "json", endpoints=m2.client_url).stdout)["members"]}
        assert names == {"m2", "m3", "m4"}, names
    finally:
        c.stop()


def test_strict_reconfig_check(tmp_path):
    """As etcd's --strict-reconfig-check (on by default): with a voter down, adding a
    voter or removing a running one would leave no quorum of the new configuration
    among the members that run, so the leader refuses; learners and the member that is
    down may still come and go."""
    c = Cluster(tmp_path, 3)
    c.start()
    m0, m1, m2 = c.members
    try:
        m2.stop()
        live = ",".join(m.client_url for m in (m0, m1))
        lead = None
        for _ in range(100):
            p = c.etcdctl("endpoint", "status", "-w", "json", endpoints=live, check=False)
            if p.returncode == 0:
                lead = next((s["Endpoint"] for s in json.loads(p.stdout)
                             if s["Status"]["header"]["member_id"] == s["Status"].get("leader")), None)
            if lead:
                break
            time.sleep(0.2)
        assert lead, "no leader among m0 and m1"
        time.sleep(1)  # the leader has seen m2's connection go
        members = lambda: {x["name"]: x["ID"] for x in json.loads(
            c.etcdctl("member", "list", "-w", "json", endpoints=lead).stdout)["members"]}
        before = members()
        p = c.etcdctl("member", "add", "v3", "--peer-urls", "http://127.0.0.1:1", endpoints=lead,
                      check=False)
        assert p.returncode != 0 and "etcdserver: unhealthy cluster" in p.stderr, p.stderr
        running = next(m for m in (m0, m1) if m.client_url != lead)
        p = c.etcdctl("member", "remove", "%x" % before[running.name], endpoints=lead, check=False)
        assert p.returncode != 0 and "etcdserver: unhealthy cluster" in p.stderr, p.stderr
        assert members() == before
        out = c.etcdctl("member", "add", "l3", "--learner", "--peer-urls", "http://127.0.0.1:1",
                        endpoints=lead).stdout
        lid = re.search(r"Member\s+([0-9a-f]+) added", out).group(1)
        c.etcdctl("member", "remove", lid, endpoints=lead)
        c.etcdctl("member", "remove", "%x" % before["m2"], endpoints=lead)
        assert set(members()) == {"m0", "m1"}
        assert c.etcdctl("put", "k", "v", endpoints=live).stdout.strip() == "OK"
    finally:
        c.stop()
    p = subprocess.run([CORD, "--strict-reconfig-check=maybe"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode != 0 and "--strict-reconfig-check" in p.stderr, p.stderr
