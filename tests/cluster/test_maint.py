"""Maintenance and Cluster services through etcdctl: snapshot, move-leader, alarms, defrag."""
import hashlib
import json
import os
import time

from conftest import Cluster, free_ports


def status(c):
    return c.status()


def test_snapshot_save_has_trailing_sha256(cluster1, tmp_path):
    c = cluster1
    for i in range(50):
        c.etcdctl("put", "snap/%d" % i, "value-%d" % i)
    path = str(tmp_path / "s.db")
    out = c.etcdctl("snapshot", "save", path).stdout
    assert "Snapshot saved at " + path in out
    data = open(path, "rb").read()
    assert len(data) % 512 == 32
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]


def test_move_leader(cluster3):
    c = cluster3
    st = status(c)
    leader = st[0]["Status"]["leader"]
    ids = [s["Status"]["header"]["member_id"] for s in st]
    target = next(i for i in ids if i != leader)
    leader_ep = next(s["Endpoint"] for s in st if s["Status"]["header"]["member_id"] == leader)
    out = c.etcdctl("move-leader", "%x" % target, endpoints=leader_ep).stdout
    assert "Leadership transferred from %x to %x" % (leader, target) in out
    deadline = time.time() + 10
    while time.time() < deadline:
        if {s["Status"]["leader"] for s in status(c)} == {target}:
            break
        time.sleep(0.1)
    assert {s["Status"]["leader"] for s in status(c)} == {target}
    # writes still work after the move
    assert c.etcdctl("put", "after-move", "1").stdout.strip() == "OK"


def test_move_leader_from_follower_is_refused(cluster3):
    c = cluster3
    st = status(c)
    leader = st[0]["Status"]["leader"]
    follower = next(s for s in st if s["Status"]["header"]["member_id"] != leader)
    p = c.etcdctl("move-leader", "%x" % leader, endpoints=follower["Endpoint"], check=False)
    assert p.returncode != 0


def test_alarm_list_and_defrag(cluster1):
    c = cluster1
    assert c.etcdctl("alarm", "list").stdout == ""
    out = c.etcdctl("defrag").stdout
    assert "Finished defragmenting etcd member" in out
    assert c.etcdctl("put", "after-defrag", "1").stdout.strip() == "OK"
    assert c.etcdctl("get", "after-defrag", "--print-value-only").stdout.strip() == "1"
    # leases keep their own database in the store, which defrag reopens: once, a lease
    # grant after a defrag failed the store and stopped the member
    out = c.etcdctl("lease", "grant", "100").stdout
    lease = out.split()[1]
    assert out.strip() == "lease %s granted with TTL(100s)" % lease
    c.etcdctl("put", "--lease=" + lease, "leased", "v")
    c.etcdctl("defrag")
    assert "keepalived with TTL(100)" in c.etcdctl("lease", "keep-alive", "--once", lease).stdout
    assert c.etcdctl("lease", "list").stdout.split()[-1] == lease
    c.etcdctl("defrag")
    assert c.etcdctl("lease", "revoke", lease).stdout.strip() == "lease %s revoked" % lease
    assert c.etcdctl("get", "leased").stdout == ""
    assert c.etcdctl("put", "after-revoke", "2").stdout.strip() == "OK"
    for m in c.members:
        assert m.proc.poll() is None, m.name


def test_metrics_and_version(cluster1):
    import urllib.request
    m = cluster1.members[0]
    body = urllib.request.urlopen(m.client_url + "/metrics", timeout=5).read().decode()
    assert "process_resident_memory_bytes" in body
    ver = json.load(urllib.request.urlopen(m.client_url + "/version", timeout=5))
    assert ver["etcdserver"].startswith("3.4")


def test_sigterm_shuts_down_cleanly(tmp_path):
    from conftest import Cluster
    c = Cluster(tmp_path, 1)
    c.start()
    c.etcdctl("put", "durable", "yes")
    assert c.stop() == [0]
    c.members[0].start(c.initial)
    c.wait_healthy()
    assert c.etcdctl("get", "durable", "--print-value-only").stdout.strip() == "yes"
    assert c.stop() == [0]


def test_bad_flags_exit_nonzero(tmp_path):
    import subprocess
    from conftest import CORD
    p = subprocess.run([CORD, "--no-such-flag"], capture_output=True, text=True, timeout=10)
    assert p.returncode != 0 and "unknown flag" in p.stderr
    p = subprocess.run([CORD, "--heartbeat-interval", "500", "--election-timeout", "1000",
                        "--data-dir", str(tmp_path / "x")], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode != 0 and "should be at least as 5 times" in p.stderr
    p = subprocess.run([CORD, "--listen-client-urls", "ftp://x", "--data-dir",
                        str(tmp_path / "y")], capture_output=True, text=True, timeout=10)
    assert p.returncode != 0 and "invalid URL" in p.stderr
    p = subprocess.run([CORD, "--version"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and "cord Version" in p.stdout


def test_snapshot_restore_starts_a_new_cluster(cluster1, tmp_path):
    import subprocess
    from conftest import CORD
    c = cluster1
    for i in range(20):
        c.etcdctl("put", "rs/%02d" % i, "v%d" % i)
    path = str(tmp_path / "backup.db")
    c.etcdctl("snapshot", "save", path)
    # a damaged file is refused
    bad = str(tmp_path / "bad.db")
    data = bytearray(open(path, "rb").read())
    data[100] ^= 0xFF
    open(bad, "wb").write(bytes(data))
    p = subprocess.run([CORD, "snapshot", "restore", bad, "--data-dir", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "integrity check failed" in p.stderr
    # restore into a new data directory, then found a new cluster from it
    nc = Cluster(tmp_path / "restored", 1)
    m = nc.members[0]
    p = subprocess.run([CORD, "snapshot", "restore", path, "--data-dir", m.data_dir,
                        "--name", m.name], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([CORD, "snapshot", "restore", path, "--data-dir", m.data_dir],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "exists" in p.stderr
    nc.start()
    try:
        out = nc.etcdctl("get", "rs/", "--prefix", "--keys-only").stdout.split()
        assert out == ["rs/%02d" % i for i in range(20)]
        assert nc.etcdctl("put", "rs/new", "1").stdout.strip() == "OK"
        members = json.loads(nc.etcdctl("member", "list", "-w", "json").stdout)["members"]
        assert [x["name"] for x in members] == [m.name]
    finally:
        nc.stop()


def test_auto_compaction_periodic(tmp_path):
    c = Cluster(tmp_path, 1)
    m = c.members[0]
    m.start(c.initial, extra=("--auto-compaction-mode", "periodic",
                              "--auto-compaction-retention", "1s"))
    c.wait_healthy()
    try:
        c.etcdctl("put", "ac", "1")
        first = json.loads(c.etcdctl("get", "ac", "-w", "json").stdout)["kvs"][0]["mod_revision"]
        deadline = time.time() + 15
        compacted = False
        while time.time() < deadline and not compacted:
            c.etcdctl("put", "ac", "x")
            p = c.etcdctl("get", "ac", "--rev", str(first), check=False)
            compacted = p.returncode != 0 and "compacted" in p.stderr
            time.sleep(0.3)
        assert compacted
        assert c.etcdctl("get", "ac", "--print-value-only").stdout.strip() == "x"
    finally:
        c.stop()


def test_bad_auto_compaction_flags(tmp_path):
    import subprocess
    from conftest import CORD
    p = subprocess.run([CORD, "--auto-compaction-mode", "revision",
                        "--auto-compaction-retention", "1h", "--data-dir", str(tmp_path / "z")],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode != 0 and "auto-compaction-retention" in p.stderr


def test_nospace_alarm_compact_defrag_disarm(tmp_path):
    c = Cluster(tmp_path, 1)
    m = c.members[0]
    m.start(c.initial, extra=("--quota-backend-bytes", str(2 * 1024 * 1024)))
    c.wait_healthy()
    try:
        value = "x" * (100 * 1024)
        full = False
        for i in range(60):
            p = c.etcdctl("put", "big/%d" % i, input=value, check=False)
            if p.returncode != 0:
                assert "database space exceeded" in p.stderr, p.stderr
                full = True
                break
        assert full
        assert "alarm:NOSPACE" in c.etcdctl("alarm", "list").stdout
        # reads and deletes keep working; writes are refused
        assert c.etcdctl("get", "big/0", "--keys-only").stdout.strip() == "big/0"
        p = c.etcdctl("put", "small", "1", check=False)
        assert p.returncode != 0 and "database space exceeded" in p.stderr
        c.etcdctl("del", "big/", "--prefix")
        rev = json.loads(c.etcdctl("get", "big/0", "-w", "json").stdout)["header"]["revision"]
        c.etcdctl("compaction", str(rev))
        c.etcdctl("defrag")
        c.etcdctl("alarm", "disarm")
        assert c.etcdctl("alarm", "list").stdout == ""
        assert c.etcdctl("put", "small", "1").stdout.strip() == "OK"
    finally:
        c.stop()


def test_peer_port_taken_exits_nonzero(tmp_path):
    import socket
    import subprocess
    from conftest import CORD
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    cport = free_ports(1)[0]
    try:
        p = subprocess.run([CORD, "--name", "x", "--data-dir", str(tmp_path / "x"),
                            "--listen-client-urls", "http://127.0.0.1:%d" % cport,
                            "--advertise-client-urls", "http://127.0.0.1:%d" % cport,
                            "--listen-peer-urls", "http://127.0.0.1:%d" % port,
                            "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % port,
                            "--initial-cluster", "x=http://127.0.0.1:%d" % port],
                           capture_output=True, text=True, timeout=20)
    finally:
        taken.close()
    assert p.returncode != 0
    assert "cannot start" in p.stderr and str(port) in p.stderr


def _etcdctl_bg(endpoints, timeout, *args):
    """etcdctl in the background: the Popen, its output (stdout and stderr) as text."""
    import subprocess
    from conftest import ETCDCTL
    return subprocess.Popen([ETCDCTL, "--endpoints", endpoints, "--command-timeout=" + timeout]
                            + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, ETCDCTL_API="3"))


def _restore_and_list(tmp_path, path, prefix):
    """`cord snapshot restore` of path into a new one-member cluster: the keys under prefix."""
    import subprocess
    from conftest import CORD
    nc = Cluster(tmp_path, 1)
    m = nc.members[0]
    p = subprocess.run([CORD, "snapshot", "restore", path, "--data-dir", m.data_dir,
                        "--name", m.name], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    nc.start()
    try:
        return nc.etcdctl("get", prefix, "--prefix", "--keys-only").stdout.split()
    finally:
        nc.stop()


def test_snapshot_copy_runs_beside_the_member(tmp_path):
    """The store's copy for a Maintenance snapshot is made on a worker: while it takes 4 s
    (a failpoint sleeps in it), the member answers puts and gets, and the snapshot it then
    sends holds the state of when it began."""
    c = Cluster(tmp_path / "c", 1)
    c.start(env={"CORD_FAILPOINTS": "storage-copy-store=1*sleep(4000)"})
    try:
        import etcd3
        cl = etcd3.client(host="127.0.0.1", port=c.members[0].client_port, timeout=10)
        for i in range(2000):  # enough data that the store's free pages are a small share
            cl.put("bs/%04d" % i, "v%d" % i + "x" * 1000)
        cl.close()
        path = str(tmp_path / "beside.db")
        t0 = time.monotonic()
        save = _etcdctl_bg(c.endpoints, "30s", "snapshot", "save", path)
        try:
            time.sleep(1.0)  # the request has reached the member; the copy sleeps until t0+4
            t1 = time.monotonic()
            c.etcdctl("put", "late", "1")
            assert c.etcdctl("get", "bs/0007", "--print-value-only").stdout.startswith("v7x")
            served = time.monotonic() - t1
            assert save.poll() is None, save.stdout.read()  # the copy has not finished yet
            out, _ = save.communicate(timeout=60)
        finally:
            if save.poll() is None:
                save.kill()
        took = time.monotonic() - t0
        assert save.returncode == 0, out
        assert served < 2.0, served
        assert took >= 4.0, took  # the failpoint did sleep in the copy
        data = open(path, "rb").read()
        assert hashlib.sha256(data[:-32]).digest() == data[-32:]
        log = open(c.members[0].log_path, "rb").read().decode(errors="replace")
        assert "the store's file as it is" in log
    finally:
        c.stop()
    keys = _restore_and_list(tmp_path / "r", path, "")
    assert keys == ["bs/%04d" % i for i in range(2000)]  # "late" came after the copy


def test_snapshot_copy_failure_and_compacting_copy(tmp_path):
    """A copy that fails is answered with an error and nothing else changes; a store that is
    mostly free pages is sent as a compacting copy, which restores."""
    c = Cluster(tmp_path / "c", 1)
    c.start(env={"CORD_FAILPOINTS": "storage-copy-store=1*error(ENOSPC)"})
    try:
        path = str(tmp_path / "s.db")
        p = c.etcdctl("snapshot", "save", path, check=False)
        assert p.returncode != 0 and "snapshot failed" in p.stderr + p.stdout
        assert not os.path.exists(path)
        import etcd3
        cl = etcd3.client(host="127.0.0.1", port=c.members[0].client_port, timeout=10)
        for i in range(600):
            cl.put("gone/%03d" % i, "x" * 4000)
        cl.close()
        c.etcdctl("put", "kept/a", "1")
        c.etcdctl("del", "gone/", "--prefix")
        rev = json.loads(c.etcdctl("get", "kept/a", "-w", "json").stdout)["header"]["revision"]
        c.etcdctl("compact", str(rev), "--physical")
        c.etcdctl("snapshot", "save", path)
        log = open(c.members[0].log_path, "rb").read().decode(errors="replace")
        assert "a compacting copy" in log
        assert c.etcdctl("put", "after", "1").stdout.strip() == "OK"
    finally:
        c.stop()
    assert _restore_and_list(tmp_path / "r", path, "") == ["kept/a"]


def test_stop_waits_for_a_snapshot_copy(tmp_path):
    """SIGTERM while a snapshot's copy is on its worker: the member waits for it, then exits
    cleanly."""
    c = Cluster(tmp_path / "c", 1)
    c.start(env={"CORD_FAILPOINTS": "storage-copy-store=1*sleep(3000)"})
    save = _etcdctl_bg(c.endpoints, "6s", "snapshot", "save", str(tmp_path / "x.db"))
    try:
        time.sleep(1.0)
        t0 = time.monotonic()
        rc = c.members[0].stop(timeout=20)
        assert rc == 0, open(c.members[0].log_path, "rb").read()[-3000:]
        assert time.monotonic() - t0 >= 1.0  # it did wait for the copy
        save.wait(timeout=30)
        assert save.returncode != 0  # the client got no snapshot
    finally:
        if save.poll() is None:
            save.kill()


def test_defrag_keeps_the_leader(tmp_path):
    """A leader's defragmentation copies its store on a worker with its applies held: while the
    copy takes 3 s (a failpoint sleeps in it), the leader keeps its term and its followers, a
    put through a follower completes, and the leader applies it once the copy is in place."""
    import etcd3
    c = Cluster(tmp_path / "c", 3)
    c.start(env={"CORD_FAILPOINTS": "maint-defrag-copy=1*sleep(3000)"})
    try:
        st = c.status()
        lead = c.leader_endpoint()
        follower = next(m.client_url for m in c.members if m.client_url != lead)
        term = {s["Status"]["raftTerm"] for s in st}
        cl = etcd3.client(host="127.0.0.1", port=int(follower.rsplit(":", 1)[1]), timeout=10)
        for i in range(300):
            cl.put("df/%03d" % i, "x" * 2000)
        cl.delete_prefix("df/")
        cl.close()
        t0 = time.monotonic()
        defrag = _etcdctl_bg(lead, "30s", "defrag")
        try:
            time.sleep(1.0)  # the copy sleeps until t0 + 3
            t1 = time.monotonic()
            assert c.etcdctl("put", "during", "1", endpoints=follower).stdout.strip() == "OK"
            served = time.monotonic() - t1
            assert defrag.poll() is None, defrag.stdout.read()
            out, _ = defrag.communicate(timeout=60)
        finally:
            if defrag.poll() is None:
                defrag.kill()
        assert defrag.returncode == 0 and "Finished defragmenting" in out, out
        assert time.monotonic() - t0 >= 3.0  # the failpoint did sleep in the copy
        assert served < 2.0, served
        got = c.etcdctl("get", "during", "--print-value-only", "--consistency=s", endpoints=lead)
        assert got.stdout.strip() == "1"
        after = c.status()
        assert c.leader_endpoint() == lead
        assert {s["Status"]["raftTerm"] for s in after} == term
        assert c.etcdctl("put", "after", "2", endpoints=lead).stdout.strip() == "OK"
    finally:
        c.stop()


def test_held_applies_bound_the_leaders_proposals(tmp_path):
    """While a leader's applies are held, its commits run ahead of them; past 5,000 entries
    its own clients' writes are refused ("too many requests", as etcd does), rather than kept
    in memory behind the copy. Once the defragmentation is done they are taken again."""
    import subprocess
    from conftest import CORD
    bench = os.path.join(os.path.dirname(CORD), "cord-bench")
    c = Cluster(tmp_path / "c", 3)
    c.start(env={"CORD_FAILPOINTS": "maint-defrag-copy=1*sleep(15000)"})
    try:
        c.status()
        lead = c.leader_endpoint()
        follower = next(m.client_url for m in c.members if m.client_url != lead)
        defrag = _etcdctl_bg(lead, "60s", "defrag")
        try:
            time.sleep(0.5)
            p = subprocess.run([bench, "put", "--endpoints", follower.replace("http://", ""),
                                "--conns", "2", "--clients", "32", "--total", "6000", "-q"],
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stdout + p.stderr
            refused = c.etcdctl("put", "k", "v", endpoints=lead, check=False)
            assert defrag.poll() is None  # still copying: the test saw what it meant to
            assert refused.returncode != 0 and "too many requests" in refused.stderr, refused
            out, _ = defrag.communicate(timeout=60)
        finally:
            if defrag.poll() is None:
                defrag.kill()
        assert defrag.returncode == 0, out
        assert c.etcdctl("put", "k", "v", endpoints=lead).stdout.strip() == "OK"
    finally:
        c.stop()


def test_defrag_copy_failure(tmp_path):
    """A defragmentation whose copy fails (a full disk) answers with an error and leaves no
    copy behind; the member applies what it held meanwhile and a later one succeeds."""
    c = Cluster(tmp_path / "c", 1)
    c.start(env={"CORD_FAILPOINTS": "maint-defrag-copy=1*error(ENOSPC)"})
    try:
        for i in range(20):
            c.etcdctl("put", "cf/%02d" % i, "v")
        p = c.etcdctl("defrag", check=False)
        assert p.returncode != 0, p.stdout
        member_dir = os.path.join(c.members[0].data_dir, "member")
        leftovers = [f for _, _, fs in os.walk(member_dir) for f in fs if f.endswith(".defrag")]
        assert leftovers == []
        assert c.etcdctl("put", "cf/after", "1").stdout.strip() == "OK"
        keys = c.etcdctl("get", "cf/", "--prefix", "--keys-only").stdout.split()
        assert len(keys) == 21
        assert "Finished defragmenting" in c.etcdctl("defrag").stdout
    finally:
        c.stop()
