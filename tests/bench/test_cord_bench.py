"""cord-bench against one real cord member on loopback: every workload, checked through its
JSON report and, for writes, through the stock etcdctl.

Bounded: each cord-bench run has a small --total, a --max-time and a subprocess timeout;
the member is stopped (SIGTERM, then SIGKILL) when the module ends, also on failure.
"""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORD = os.environ.get("CORD_BIN", os.path.join(ROOT, "build", "cord"))
BENCH = os.environ.get("CORD_BENCH_BIN", os.path.join(ROOT, "build", "cord-bench"))
ETCDCTL = os.environ.get("ETCDCTL_BIN", "etcdctl")


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Member:
    """One cord member (a 1-member cluster) on free loopback ports."""

    def __init__(self, tmp):
        self.client_port, self.peer_port = free_ports(2)
        self.data_dir = str(tmp / "m0.cord")
        self.log_path = str(tmp / "m0.log")
        self.proc = None

    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.client_port

    def start(self, timeout=30):
        curl = "http://127.0.0.1:%d" % self.client_port
        purl = "http://127.0.0.1:%d" % self.peer_port
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [CORD, "--name", "m0", "--data-dir", self.data_dir,
             "--listen-client-urls", curl, "--advertise-client-urls", curl,
             "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
             "--initial-cluster", "m0=" + purl, "--initial-cluster-state", "new",
             "--heartbeat-interval", "50", "--election-timeout", "500"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("cord exited with %s:\n%s" % (
                    self.proc.returncode, open(self.log_path, "rb").read().decode(errors="replace")[-4000:]))
            try:
                with urllib.request.urlopen(curl + "/health", timeout=1) as r:
                    if json.load(r).get("health") == "true":
                        return
            except Exception:
                pass
            time.sleep(0.05)
        raise RuntimeError("cord not healthy within %ss" % timeout)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        self.log.close()

    def etcdctl(self, *args):
        env = dict(os.environ, ETCDCTL_API="3")
        p = subprocess.run([ETCDCTL, "--endpoints", self.endpoint, "--command-timeout=5s",
                            "--dial-timeout=3s"] + list(args),
                           capture_output=True, text=True, env=env, timeout=30)
        assert p.returncode == 0, (p.stdout, p.stderr)
        return p.stdout

    def count(self, prefix):
        # etcdctl 3.4 has no --count-only; the JSON range response carries "count".
        out = json.loads(self.etcdctl("get", prefix, "--prefix", "--keys-only", "--limit", "1",
                                      "-w", "json"))
        return int(out.get("count", 0))


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    m = Member(tmp_path_factory.mktemp("bench"))
    m.start()
    yield m
    m.stop()


def bench(endpoint, *args, timeout=60):
    cmd = [BENCH] + list(args) + ["--endpoints", endpoint, "--max-time", "40",
                                  "--timeout-ms", "5000", "-w", "json"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def run_ok(member, *args):
    p = bench(member.endpoint, *args)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    assert len(lines) == 1, p.stdout
    r = json.loads(lines[0])
    for k in ("workload", "ops", "errors", "duration_s", "qps", "p50_ms", "p90_ms", "p99_ms",
              "p999_ms", "max_ms"):
        assert k in r, (k, r)
    assert r["errors"] == 0 and r["errors_by_status"] == {}, r
    assert r["qps"] > 0 and r["duration_s"] > 0, r
    assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["p999_ms"] <= r["max_ms"], r
    return r


COMMON = ["--conns", "2", "--clients", "8", "--key-size", "16"]


def test_put_keys_land(member):
    r = run_ok(member, "put", "--total", "300", "--key-prefix", "bp/", "--sequential-keys",
               "--key-space", "300", "--val-size", "64", *COMMON)
    assert r["workload"] == "put" and r["ops"] == 300 and r["latency_samples"] == 300
    assert member.count("bp/") == 300
    # Keys are prefix + zero-padded op number, --key-size bytes in all.
    assert member.etcdctl("get", "bp/0000000000299", "--print-value-only").strip() == "v" * 64


def test_range_linearizable_and_serializable(member):
    run_ok(member, "put", "--total", "50", "--key-prefix", "br/", "--sequential-keys",
           "--key-space", "50", *COMMON)
    for cons in ("l", "s"):
        r = run_ok(member, "range", "--total", "200", "--consistency", cons, "--key-prefix", "br/",
                   "--key-space", "50", *COMMON)
        assert r["workload"] == "range" and r["ops"] == 200
    r = run_ok(member, "range", "--total", "100", "--prefix", "br/", "--limit", "10", *COMMON)
    assert r["ops"] == 100


def test_txn_compare_and_set(member):
    r = run_ok(member, "txn", "--total", "200", "--key-prefix", "bt/", "--key-space", "8", *COMMON)
    assert r["workload"] == "txn" and r["ops"] == 200
    # 8 clients, 8 keys: each client owns one key, so no compare ever fails ...
    assert r["txn_conflicts"] == 0
    assert member.count("bt/") == 8
    # ... and each successful txn wrote its key once: 200 versions over the 8 keys.
    out = json.loads(member.etcdctl("get", "bt/", "--prefix", "-w", "json"))
    assert sum(int(kv["version"]) for kv in out["kvs"]) == 200
    # A second run starts from stale revisions: the first txn of each client fails its
    # compare, re-reads in the same txn and then succeeds.
    r = run_ok(member, "txn", "--total", "40", "--key-prefix", "bt/", "--key-space", "8", *COMMON)
    assert r["txn_conflicts"] == 8


def test_watch_latency(member):
    r = run_ok(member, "watch", "--total", "100", "--watchers", "6", "--key-prefix", "bw/",
               "--sequential-keys", "--key-space", "100", *COMMON)
    assert r["workload"] == "watch" and r["ops"] == 100
    assert r["events"] == r["events_expected"] == 600
    assert r["latency_samples"] == 600
    assert member.count("bw/") == 100


def test_lease_grant_and_keepalive(member):
    r = run_ok(member, "lease", "--total", "200", "--keepalives", "4", "--lease-ttl", "30", *COMMON)
    assert r["workload"] == "lease" and r["ops"] == 200
    assert r["leases_granted"] + r["keepalives"] == 200
    assert r["leases_granted"] >= 8
    leases = member.etcdctl("lease", "list")
    assert "found %d leases" % r["leases_granted"] in leases, leases  # all alive (TTL 30 s)


def test_mixed_ratio(member):
    r = run_ok(member, "mixed", "--total", "400", "--read-ratio", "0.75", "--key-prefix", "bm/",
               "--sequential-keys", "--key-space", "400", *COMMON)
    assert r["ops"] == 400 and r["reads"] + r["writes"] == 400
    assert 200 < r["reads"] < 380, r
    assert member.count("bm/") == r["writes"]


def test_rate_and_duration(member):
    t0 = time.time()
    r = run_ok(member, "put", "--duration", "1.5", "--rate", "200", "--key-prefix", "bd/", *COMMON)
    elapsed = time.time() - t0
    assert 1.4 <= r["duration_s"] <= 3 and elapsed < 10, (r, elapsed)
    assert 200 <= r["ops"] <= 320, r  # ~200/s for 1.5 s


def test_text_output(member):
    p = subprocess.run([BENCH, "range", "--endpoints", member.endpoint, "--total", "20",
                        "--key-prefix", "bp/"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "p99.9" in p.stdout and "errors:     0" in p.stdout, p.stdout


def test_stopped_endpoint_fails_clearly(tmp_path):
    (port,) = free_ports(1)
    p = bench("127.0.0.1:%d" % port, "put", "--total", "10", timeout=30)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "cannot connect to 127.0.0.1:%d" % port in p.stderr and "refused" in p.stderr, p.stderr
    assert p.stdout == ""


def test_usage_errors():
    for args in (["nosuch"], ["put", "--conns", "0"], ["put", "--consistency", "x"],
                 ["watch"], ["put", "-w", "yaml"]):
        p = subprocess.run([BENCH] + args, capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and "cord-bench:" in p.stderr, (args, p.stderr)


def test_member_stops_mid_run(tmp_path):
    m = Member(tmp_path)
    m.start()
    try:
        proc = subprocess.Popen([BENCH, "put", "--endpoints", m.endpoint, "--duration", "20",
                                 "--clients", "4", "--max-time", "30", "--timeout-ms", "3000",
                                 "-w", "json", "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        m.stop()
        out, err = proc.communicate(timeout=30)
    finally:
        m.stop()
    assert proc.returncode == 1, (proc.returncode, out, err)
    assert "connection to %s lost" % m.endpoint in err, err
    r = json.loads(out)
    assert r["ops"] > 0 and "fatal" in r
