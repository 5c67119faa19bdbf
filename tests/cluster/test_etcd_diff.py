"""The same etcdctl session against a real etcd 3.4 (Debian's etcd-server) and against
cord, both fresh single members: the outputs must be the same, once member, cluster and
lease ids and the raft term (which differ by design) are masked."""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

from conftest import Cluster, free_ports

ETCD = shutil.which("etcd")

SESSION = [
    ("put", "a", "1"),
    ("put", "b", "2"),
    ("put", "a", "3", "--prev-kv"),
    ("get", "a"),
    ("get", "a", "-w", "json"),
    ("get", "", "--prefix", "-w", "json"),
    ("get", "a", "--rev", "1"),
    ("get", "a", "--from-key", "--keys-only"),
    ("get", "a", "--prefix", "--count-only", "-w", "json"),
    ("get", "", "--from-key", "--sort-by", "MODIFY", "--order", "DESCEND", "--limit", "1"),
    ("put", "c/1", "x"), ("put", "c/2", "y"),
    ("del", "c/", "--prefix", "--prev-kv"),
    ("del", "nothing"),
    ("txn", "-w", "json", {"input": 'mod("a") > "0"\n\nput a 4\nget b\n\ndel b\n\n'}),
    ("get", "a", "b", "-w", "json"),
    ("compaction", "3"),
    ("get", "a", "--rev", "2"),
    ("get", "a", "--rev", "100"),
    ("put", "", "x"),
    ("watch", "a", "--rev", "3"),
    ("watch", "a", "--rev", "1"),
    ("lease", "grant", "100"),
    ("lease", "timetolive", "LEASE"),
    ("put", "l", "v", "--lease", "LEASE"),
    ("lease", "timetolive", "LEASE", "--keys"),
    ("lease", "revoke", "LEASE"),
    ("lease", "timetolive", "LEASE"),
    ("get", "l"),
    ("put", "k", "v", "--lease", "123"),
    ("alarm", "list"),
]


def mask(text):
    text = re.sub(r'"(cluster_id|member_id|raft_term|ID|id)":\s*\d+', r'"\1":N', text)
    text = re.sub(r"\blease [0-9a-f]+\b", "lease L", text)
    text = re.sub(r"remaining\(\d+s\)", "remaining(Ns)", text)
    text = re.sub(r'"ts":"[^"]*"', '"ts":T', text)
    text = re.sub(r'"target":"[^"]*"', '"target":T', text)
    text = re.sub(r'"caller":"[^"]*"', '"caller":C', text)
    return text


def run_session(endpoint):
    env = dict(os.environ, ETCDCTL_API="3")
    outs = []
    lease = None
    for cmd in SESSION:
        kwargs = {}
        if isinstance(cmd[-1], dict):
            kwargs = cmd[-1]
            cmd = cmd[:-1]
        args = [lease if (a == "LEASE" and lease) else a for a in cmd]
        if args[0] == "watch":
            p = subprocess.Popen(["etcdctl", "--endpoints", endpoint] + args,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env)
            time.sleep(1.0)
            p.terminate()
            out, err = p.communicate(timeout=10)
            err = "\n".join(l for l in err.splitlines() if "compacted" in l)
            outs.append(("watch", out, mask(err)))
            continue
        p = subprocess.run(["etcdctl", "--endpoints", endpoint, "--command-timeout=5s"] + args,
                           capture_output=True, text=True, env=env, timeout=30, **kwargs)
        if args[:2] == ["lease", "grant"]:
            lease = re.match(r"lease ([0-9a-f]+)", p.stdout).group(1)
        # keep only the final error line: the client's retry log lines differ in timing
        err = "\n".join(l for l in p.stderr.splitlines() if l.startswith("Error"))
        outs.append((" ".join(cmd), mask(p.stdout), mask(err)))
    return outs


@pytest.fixture
def etcd(tmp_path):
    if ETCD is None:
        pytest.skip("etcd-server is not installed")
    cport, pport = free_ports(2)
    url = "http://127.0.0.1:%d" % cport
    peer = "http://127.0.0.1:%d" % pport
    log = open(str(tmp_path / "etcd.log"), "wb")
    p = subprocess.Popen([ETCD, "--name", "e0", "--data-dir", str(tmp_path / "etcd"),
                          "--listen-client-urls", url, "--advertise-client-urls", url,
                          "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                          "--initial-cluster", "e0=" + peer],
                         stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if json.load(urllib.request.urlopen(url + "/health", timeout=1))["health"] == "true":
                break
        except Exception:
            time.sleep(0.1)
    yield url
    p.terminate()
    p.wait(timeout=20)
    log.close()


def test_same_output_as_etcd(etcd, tmp_path):
    c = Cluster(tmp_path / "cord", 1)
    c.start()
    try:
        ours = run_session(c.members[0].client_url)
    finally:
        c.stop()
    theirs = run_session(etcd)
    assert len(theirs) == len(ours) == len(SESSION)
    # the session exercises real answers and real errors on both sides
    assert any(o[1].strip() == "OK" for o in ours)
    assert any("required revision has been compacted" in o[2] for o in ours)
    assert any("key is not provided" in o[2] for o in ours)
    assert any("requested lease not found" in o[2] for o in ours)
    assert any(o[0] == "watch" and "PUT" in o[1] for o in ours)
    diffs = [(a[0], a, b) for a, b in zip(theirs, ours) if a != b]
    assert not diffs, "\n\n".join("%s\n  etcd: %r\n  cord: %r" % (cmd, a[1:], b[1:])
                                  for cmd, a, b in diffs)
