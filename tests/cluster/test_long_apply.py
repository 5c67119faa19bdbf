"""A write whose apply takes many election timeouts (one DeleteRange of 400,000 keys) does not
make the cluster elect a new leader: the leader's new commit index goes out before it applies,
so every member applies at the same time instead of the followers hearing nothing from a busy
leader. Before, such a delete under these timings cost 10-15 leader changes and new terms.
(A follower that finishes first may still start a pre-vote, which changes no term: the leader
goes on. Under heavy load one election may still follow; more fail.) That timing is asserted in
the optimised build only (CORD_SANITIZED unset; see src/server/CMakeLists.txt)."""
import json
import os
import subprocess

from conftest import ROOT, Cluster

BENCH = os.environ.get("CORD_BENCH_BIN", os.path.join(ROOT, "build", "cord-bench"))
KEYS = 400000


def leader_and_terms(c):
    """The leader's member id and every member's Raft term, once they agree on a leader."""
    st = c.status()
    return st[0]["Status"]["leader"], sorted(s["Status"]["header"]["raft_term"] for s in st)


def count(c):
    """Keys under /big/ (the range's count; one key is returned)."""
    out = c.etcdctl("get", "--prefix", "/big/", "--keys-only", "--limit", "1", "-w", "json")
    return json.loads(out.stdout).get("count", 0)


def test_long_delete_keeps_the_leader(tmp_path):
    c = Cluster(tmp_path, 3)
    # 1 s election timeout (etcd's default): the delete's apply takes 2-3 s here. A shorter
    # timeout (250 ms with 200,000 keys) flaked in CI: under ctest -j2 the members finished
    # their applies more than 250 ms apart.
    extra = ("--heartbeat-interval", "100", "--election-timeout", "1000",
             "--snapshot-count", "10000000")
    for m in c.members:
        m.start(c.initial, extra=extra)
    try:
        c.wait_healthy()
        eps = ",".join(m.client_url.replace("http://", "") for m in c.members)
        load = subprocess.run(
            [BENCH, "put", "--endpoints", eps, "--conns", "16", "--clients", "256",
             "--total", str(KEYS), "--key-size", "200", "--val-size", "16",
             "--key-space", str(KEYS), "--sequential-keys", "--key-prefix", "/big/",
             "--max-time", "240", "-q"],
            capture_output=True, text=True, timeout=300)
        assert load.returncode == 0, load.stderr
        assert count(c) == KEYS
        before = leader_and_terms(c)

        out = c.etcdctl("del", "--prefix", "/big/", "--command-timeout=120s", timeout=150)
        assert out.stdout.strip() == str(KEYS)

        c.wait_healthy()
        assert count(c) == 0
        if os.environ.get("CORD_SANITIZED"):
            # Under ASan the apply takes seconds on 3 members sharing 2 cores with other
            # tests, and they finish further apart than an election timeout: the leader
            # sends nothing while it applies (only applying off the loop would change that).
            # The delete itself is still checked above.
            return
        leader, terms = leader_and_terms(c)
        if max(terms) == max(before[1]):
            assert leader == before[0]
        else:
            # Under ctest -j2 with the nemesis suite alongside, the members' applies may finish
            # more than an election timeout apart: the leader, done first, then steps down by
            # check-quorum and one election follows (seen once, 2026-11-27). Without the commit
            # index going out before the apply, the delete cost 10-15 elections.
            assert max(terms) == max(before[1]) + 1, (before, (leader, terms))
    finally:
        c.stop()
