"""The Raft log held in memory is bounded (--log-memory-bytes): applied entries leave memory
and a follower that falls behind is sent them from the leader's WAL, not a snapshot, as long
as no snapshot covers them."""
import json
import threading
import time

import pytest

from conftest import Cluster


@pytest.mark.parametrize("restart_others", [False, True], ids=["running", "restarted"])
def test_lagging_follower_is_served_from_the_wal(tmp_path, restart_others):
    """restarted: the other two members restart before the follower comes back. A restart
    reads back into memory no more applied entries than the bound, so the leader then sends
    nearly all of them from its WAL."""
    etcd3 = pytest.importorskip("etcd3")
    c = Cluster(tmp_path, 3)
    # 64 KiB of entries in memory; no snapshot during the test (1,000,000 entries apart)
    extra = ("--log-memory-bytes", "65536", "--snapshot-count", "1000000")
    for m in c.members:
        m.start(c.initial, extra=extra)
    try:
        c.wait_healthy()
        lead_ep = c.leader_endpoint()
        leader = next(m for m in c.members if m.client_url.endswith(lead_ep.split(":")[-1]))
        follower = next(m for m in c.members if m is not leader)
        assert follower.stop() == 0

        # ~2.5 MB of entries (forty times the bound) while the follower is away
        value = "v" * 800
        n_threads, per_thread = 4, 800

        def writer(t):
            cl = etcd3.client(host="127.0.0.1", port=leader.client_port, timeout=10)
            for i in range(per_thread):
                cl.put("lag/%d/%04d" % (t, i), "%s-%d-%d" % (value, t, i))
            cl.close()

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        assert not any(th.is_alive() for th in threads)

        if restart_others:
            for m in c.members:
                if m is not follower:
                    assert m.stop() == 0
            for m in c.members:
                if m is not follower:
                    m.start(c.initial, extra=extra)
            leader = None
            deadline = time.time() + 30
            while leader is None and time.time() < deadline:
                for m in c.members:
                    if m is follower:
                        continue
                    p = c.etcdctl("endpoint", "status", "-w", "json", endpoints=m.client_url,
                                  check=False)
                    if p.returncode == 0:
                        s = json.loads(p.stdout)[0]["Status"]
                        if s["header"]["member_id"] == s.get("leader"):
                            leader = m
                if leader is None:
                    time.sleep(0.2)
            assert leader is not None, "no leader after the restart"

        follower.start(c.initial, extra=extra)
        c.wait_healthy()
        cl = etcd3.client(host="127.0.0.1", port=follower.client_port, timeout=10)
        deadline = time.time() + 30
        last = "lag/%d/%04d" % (n_threads - 1, per_thread - 1)
        while time.time() < deadline:
            v, _ = cl.get(last, serializable=True)
            if v is not None:
                break
            time.sleep(0.1)
        got = {md.key.decode(): v.decode()
               for v, md in cl.get_prefix("lag/", serializable=True)}
        cl.close()
        assert len(got) == n_threads * per_thread, len(got)
        for t in range(n_threads):
            for i in range(per_thread):
                assert got["lag/%d/%04d" % (t, i)] == "%s-%d-%d" % (value, t, i)
        hashes = set()
        for m in c.members:
            out = c.etcdctl("endpoint", "hashkv", endpoints=m.client_url).stdout
            hashes.add(out.split(",")[-1].strip())
        assert len(hashes) == 1, hashes
        # it caught up from the leader's WAL: no snapshot was made, sent or installed
        log = open(follower.log_path, "rb").read().decode(errors="replace")
        assert "installed the leader's snapshot" not in log
        for m in c.members:
            assert m.snap_files() == [], (m.name, m.snap_files())
        # the leader says so: entries read back from its WAL and sent
        reads = leader.metric("cord_raft_log_reads_total")
        read_entries = leader.metric("cord_raft_log_read_entries_total")
        assert reads >= 2 and read_entries >= n_threads * per_thread - 200, (reads,
                                                                              read_entries)
        leader_log = open(leader.log_path, "rb").read().decode(errors="replace")
        assert "reading the log from index" not in leader_log
        assert "refused by the core" not in leader_log
    finally:
        c.stop()
