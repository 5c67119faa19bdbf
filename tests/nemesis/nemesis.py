#!/usr/bin/python3
"""Fault injection on real cord processes, checked for linearizability.

One run: N members, each in its own network namespace (veth pairs into a bridge
in a hub namespace the run creates); this process moves itself into the hub
namespace and runs the clients there: client threads doing reads, writes,
compare-and-set transactions and deletes on a handful of keys (a new handful
every --epoch seconds), watchers of the whole key space that reconnect from
where they stopped, and lease threads (grant, put with the lease, keep alive,
let go). A nemesis thread injects one fault at a time, chosen from the seed:
SIGKILL + restart, SIGSTOP + SIGCONT, partitions with iptables inside the
member namespaces, member remove + re-add with a wiped data directory, and
restarts with a storage failpoint armed (CORD_FAILPOINTS=name=N*crash).

After the faults stop, everything is healed and the run checks:
  - the history is linearizable (build/cord-lincheck, per key);
  - every acknowledged write is in the final revision history at the revision it
    was acknowledged with, and nothing was written that no client asked for;
  - revisions are contiguous and every member has the same revision history;
  - every watcher saw every change exactly once, in revision order, no gaps,
    across its reconnects;
  - a lease's key was present while its lease was alive, and every lease key is
    gone after the leases expire;
  - all members end at the same revision with equal HashKV;
  - no member exited except when the nemesis made it.

Output in --out: history.jsonl (operations, cord-lincheck's format), schedule.jsonl
(nemesis events), watch-*.jsonl, logs/*.log, verdict.json. Exit 0 when every check
passes, 1 when one fails, 2 when the harness itself could not run.
"""
import argparse
import ctypes
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUBNET = "10.77.0"
HUB_IP = SUBNET + ".254"
CLIENT_PORT = 2379
PEER_PORT = 2380
ELECTION_MS = 500
HEARTBEAT_MS = 50
NEMESES = ("kill", "pause", "partition", "member", "failpoint", "eio", "maint")
# Every member runs with the Maintenance copies slowed down, so that a defragmenting member
# (nem_maint) holds its applies for a while as the writes go on, and a snapshot's copy runs
# beside them. These fire only on Defragment and Snapshot calls, which only nem_maint makes.
MAINT_FAILPOINTS = "maint-defrag-copy=sleep(1500),storage-copy-store=sleep(500)"
PARTITIONS = ("isolate", "split", "bridge", "oneway", "loss")
FAILPOINTS = ("wal-before-write", "wal-after-write", "wal-torn-write", "wal-before-fsync",
              "wal-after-fsync", "wal-before-segment-rename", "mvcc-before-commit",
              "mvcc-after-commit", "snap-before-write", "snap-before-rename", "snap-after-rename",
              "mvcc-before-swap")
FAILPOINT_EXIT = 86
FAILED_EXIT = 1  # a member whose storage failed stops serving and exits 1
NS_PREFIX = "cnm"
OP_TIMEOUT = 1.5


def now():
    return time.monotonic_ns()


def run(*args, check=True, timeout=30):
    p = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
    return p


class HarnessError(Exception):
    pass


# ---------------------------------------------------------------- network


def cleanup_stale_namespaces():
    """Delete namespaces left by earlier runs whose process is gone."""
    out = run("ip", "netns", "list", check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"^%s(\d+)-" % NS_PREFIX, name)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            run("ip", "netns", "del", name, check=False)


class Net:
    """A hub namespace with a bridge, and one namespace per member joined to it
    by a veth pair. Nothing is created outside these namespaces."""

    def __init__(self, n):
        self.prefix = "%s%d" % (NS_PREFIX, os.getpid())
        self.hub = self.prefix + "-hub"
        self.ns = ["%s-m%d" % (self.prefix, i) for i in range(n)]
        self.ips = ["%s.%d" % (SUBNET, i + 1) for i in range(n)]
        self.created = []

    def up(self):
        run("ip", "netns", "add", self.hub)
        self.created.append(self.hub)
        run("ip", "-n", self.hub, "link", "set", "lo", "up")
        run("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.hub, "link", "set", "br0", "up")
        run("ip", "-n", self.hub, "addr", "add", HUB_IP + "/24", "dev", "br0")
        for i, ns in enumerate(self.ns):
            run("ip", "netns", "add", ns)
            self.created.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "m%d" % i,
                "netns", self.hub)
            run("ip", "-n", ns, "addr", "add", self.ips[i] + "/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", self.hub, "link", "set", "m%d" % i, "master", "br0")
            run("ip", "-n", self.hub, "link", "set", "m%d" % i, "up")

    def down(self):
        for ns in reversed(self.created):
            run("ip", "netns", "del", ns, check=False)
        self.created = []

    def iptables(self, i, *args):
        run("ip", "netns", "exec", self.ns[i], "iptables", "-w", "5", *args)

    def drop_from(self, i, j, probability=None):
        """Member i drops what member j sends it (j -> i)."""
        rule = ["-A", "INPUT", "-s", self.ips[j]]
        if probability is not None:
            rule += ["-m", "statistic", "--mode", "random", "--probability", "%.2f" % probability]
        self.iptables(i, *(rule + ["-j", "DROP"]))

    def cut(self, i, j):
        self.drop_from(i, j)
        self.drop_from(j, i)

    def heal(self):
        for i in range(len(self.ns)):
            self.iptables(i, "-F", "INPUT")


def enter_netns(name):
    """Move this process (its only thread) into a network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/run/netns/" + name, os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            err = ctypes.get_errno()
            raise OSError(err, "setns(%s): %s" % (name, os.strerror(err)))
    finally:
        os.close(fd)


# ---------------------------------------------------------------- members


class Member:
    def __init__(self, h, i):
        self.h = h
        self.i = i
        self.name = "m%d" % i
        self.ip = h.net.ips[i]
        self.ns = h.net.ns[i]
        self.gen = 0  # bumped on every re-add: a new peer URL, hence a new member id
        self.proc = None
        self.expected_exit = False  # set before the nemesis kills it
        self.failpoint = None
        self.in_cluster = True
        self.data_dir = os.path.join(h.out, "data", self.name + ".cord")
        self.log_path = os.path.join(h.out, "logs", self.name + ".log")

    @property
    def peer_url(self):
        return "http://%s:%d" % (self.ip, PEER_PORT + self.gen)

    @property
    def client_url(self):
        return "http://%s:%d" % (self.ip, CLIENT_PORT)

    @property
    def endpoint(self):
        return "%s:%d" % (self.ip, CLIENT_PORT)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, initial_cluster, state, failpoint=None):
        assert not self.running()
        args = ["ip", "netns", "exec", self.ns, self.h.cord,
                "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
                "--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS),
                "--snapshot-count", str(self.h.snapshot_count)]
        if self.h.log_memory_bytes is not None:
            args += ["--log-memory-bytes", str(self.h.log_memory_bytes)]
        env = dict(os.environ)
        env["CORD_FAILPOINTS"] = MAINT_FAILPOINTS + ("," + failpoint if failpoint else "")
        self.failpoint = failpoint
        self.expected_exit = False
        with open(self.log_path, "ab") as log:
            log.write(("=== %.3f start state=%s failpoints=%s peer=%s\n" % (
                self.h.elapsed(), state, failpoint, self.peer_url)).encode())
            log.flush()
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)

    def signal(self, sig):
        if self.running():
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        self.expected_exit = True
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc is None:
            return
        self.expected_exit = True
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


# ---------------------------------------------------------------- harness


class Harness:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed
        self.cord = os.path.abspath(args.cord)
        self.lincheck = os.path.abspath(args.lincheck)
        self.out = os.path.abspath(args.out)
        self.snapshot_count = args.snapshot_count
        self.log_memory_bytes = args.log_memory_bytes
        self.nemeses = parse_nemeses(args.nemesis)
        self.n = args.members
        self.net = Net(self.n)
        self.members = []
        self.t0 = now()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.problems = []
        self.op_id = 0
        self.history_file = None
        self.acked = []  # (rev, key, typ, value) of acknowledged changes
        self.attempted = set()  # every value a client asked to write
        self.keys = set()
        self.counts = {"ok": 0, "fail": 0, "unknown": 0}
        self.schedule_file = None
        self.faults = 0
        self.watchers = []
        self.leases = []  # dicts: id, key, ttl

    # -- bookkeeping
    def elapsed(self):
        return (now() - self.t0) / 1e9

    def problem(self, text):
        with self.lock:
            self.problems.append(text)
        print("PROBLEM: %s" % text, file=sys.stderr, flush=True)

    def event(self, what, **kw):
        rec = dict(t=round(self.elapsed(), 3), event=what, **kw)
        with self.lock:
            self.schedule_file.write(json.dumps(rec) + "\n")
            self.schedule_file.flush()
        if self.args.verbose:
            print("[%7.2f] %s %s" % (self.elapsed(), what, kw), flush=True)

    def record(self, op):
        with self.lock:
            self.op_id += 1
            op["id"] = self.op_id
            self.counts[op["status"]] += 1
            self.history_file.write(json.dumps(op) + "\n")

    def conn(self, i):
        return Conn(self.members[i].endpoint)

    # -- cluster
    def initial_cluster(self):
        return ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members if m.in_cluster)

    def start_cluster(self):
        for i in range(self.n):
            self.members.append(Member(self, i))
        ic = self.initial_cluster()
        for m in self.members:
            m.start(ic, "new")
        self.wait_leader(30)

    def statuses(self, timeout=1.0):
        out = {}
        for m in self.members:
            if not m.running():
                continue
            try:
                c = Conn(m.endpoint)
                out[m.i] = c.maint.Status(etcdrpc.StatusRequest(), timeout=timeout)
                c.close()
            except grpc.RpcError:
                pass
        return out

    def leader(self):
        """Index of the member that is leader by its own account and by a
        majority of the answers; None when there is none."""
        st = self.statuses()
        votes = {}
        for s in st.values():
            if s.leader:
                votes[s.leader] = votes.get(s.leader, 0) + 1
        for i, s in st.items():
            if s.header.member_id == s.leader and votes.get(s.leader, 0) * 2 > len(self.members):
                return i
        return None

    def wait_leader(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.check_exits()
            ld = self.leader()
            if ld is not None:
                return ld
            time.sleep(0.1)
        raise HarnessError("no leader within %ss" % timeout)

    def check_exits(self):
        """A member that exited without the nemesis asking is a failure; it is
        restarted so the run can go on and collect more evidence."""
        for m in self.members:
            if m.proc is None or m.proc.poll() is None:
                continue
            rc = m.proc.returncode
            if m.expected_exit:
                continue
            if m.failpoint and "error(" in m.failpoint and rc == FAILED_EXIT:
                self.event("failpoint-stop", member=m.name, failpoint=m.failpoint)
                m.expected_exit = True
                continue
            if m.failpoint and rc == FAILPOINT_EXIT:
                self.event("failpoint-crash", member=m.name, failpoint=m.failpoint)
                m.expected_exit = True
                continue
            if not m.in_cluster:
                m.expected_exit = True  # a removed member stops by itself
                continue
            self.problem("%s exited unexpectedly with %s at %.1fs (see logs/%s.log)" % (
                m.name, rc, self.elapsed(), m.name))
            m.expected_exit = True
            m.start(self.initial_cluster(), "existing")

    def member_id(self, m):
        ld = self.leader()
        if ld is None:
            return None, None
        c = self.conn(ld)
        try:
            r = c.cluster.MemberList(etcdrpc.MemberListRequest(), timeout=2)
        finally:
            c.close()
        for mem in r.members:
            if m.peer_url in mem.peerURLs:
                return mem.ID, ld
        return None, ld

    # -- nemeses: each returns (description, heal function)
    def pick_target(self, rng):
        running = [m for m in self.members if m.running() and m.in_cluster]
        if not running:
            return None
        if rng.random() < 0.5:
            ld = self.leader()
            if ld is not None:
                return self.members[ld]
        return rng.choice(running)

    def nem_kill(self, rng, sub):
        m = self.pick_target(rng)
        if m is None:
            return None
        m.kill()

        def heal():
            m.start(self.initial_cluster(), "existing")
        return {"target": m.name}, heal

    def nem_pause(self, rng, sub):
        m = self.pick_target(rng)
        if m is None:
            return None
        m.signal(signal.SIGSTOP)

        def heal():
            m.signal(signal.SIGCONT)
        return {"target": m.name}, heal

    def nem_partition(self, rng, sub):
        kinds = [sub] if sub else list(PARTITIONS)
        if self.n < 3:
            kinds = [k for k in kinds if k not in ("bridge", "split")] or ["isolate"]
        kind = rng.choice(kinds)
        idx = list(range(self.n))
        desc = {"kind": kind}
        if kind == "isolate":
            t = self.pick_target(rng)
            t = t.i if t is not None else rng.randrange(self.n)
            for j in idx:
                if j != t:
                    self.net.cut(t, j)
            desc["isolated"] = "m%d" % t
        elif kind == "split":
            rng.shuffle(idx)
            minority = idx[:(self.n - 1) // 2]
            majority = idx[(self.n - 1) // 2:]
            for a in minority:
                for b in majority:
                    self.net.cut(a, b)
            desc["minority"] = ["m%d" % i for i in minority]
        elif kind == "bridge":
            rng.shuffle(idx)
            bridge = idx[0]
            rest = idx[1:]
            left, right = rest[:len(rest) // 2], rest[len(rest) // 2:]
            for a in left:
                for b in right:
                    self.net.cut(a, b)
            desc.update(bridge="m%d" % bridge, left=["m%d" % i for i in left],
                        right=["m%d" % i for i in right])
        elif kind == "oneway":
            t = self.pick_target(rng)
            t = t.i if t is not None else rng.randrange(self.n)
            for j in idx:
                if j != t:
                    self.net.drop_from(t, j)
            desc["deaf"] = "m%d" % t
        elif kind == "loss":
            p = rng.choice((0.2, 0.4, 0.6))
            for a in idx:
                for b in idx:
                    if a != b:
                        self.net.drop_from(a, b, probability=p)
            desc["probability"] = p
        return desc, self.net.heal

    def nem_member(self, rng, sub):
        """Remove a member, wipe its data, add it back under a new peer URL (a new member id)
        and start it empty. The calls go to any other member: a follower carries them to the
        leader, and its answer can be lost with a change of leader, so the outcome is read
        back from the member list."""
        if any(not m.running() for m in self.members):
            return None
        m = rng.choice(self.members)
        mid, ld = self.member_id(m)
        if mid is None:
            return None
        pick = random.Random(rng.random())  # for the calls, now and in heal
        via = pick.choice([i for i, o in enumerate(self.members) if o is not m])
        c = self.conn(via)
        try:
            c.cluster.MemberRemove(etcdrpc.MemberRemoveRequest(ID=mid), timeout=5)
        except grpc.RpcError as e:
            still, ld = None, None
            deadline = time.time() + 10
            while ld is None and time.time() < deadline:  # the list needs a leader
                try:
                    still, ld = self.member_id(m)
                except grpc.RpcError:
                    still, ld = None, None
                if ld is None:
                    time.sleep(0.2)
            if still is not None or ld is None:
                self.event("member-remove-failed", target=m.name, via="m%d" % via,
                           error=str(e.details()))
                return None
            self.event("member-remove-answer-lost", target=m.name, via="m%d" % via,
                       error=str(e.details()))
        finally:
            c.close()
        m.in_cluster = False
        m.expected_exit = True
        deadline = time.time() + 10
        while m.running() and time.time() < deadline:
            time.sleep(0.1)
        stopped_itself = not m.running()
        m.kill()
        shutil.rmtree(m.data_dir, ignore_errors=True)

        def heal():
            m.gen += 1
            deadline2 = time.time() + 30
            last = None
            while time.time() < deadline2:
                if self.leader() is not None:
                    via2 = pick.choice([i for i, o in enumerate(self.members)
                                        if o is not m and o.running()])
                    c2 = self.conn(via2)
                    try:
                        c2.cluster.MemberAdd(etcdrpc.MemberAddRequest(peerURLs=[m.peer_url]), timeout=5)
                        break
                    except grpc.RpcError as e:
                        last = e.details()
                        if "Peer URLs already exists" in (last or ""):
                            break  # an earlier try went through; its answer was lost
                    finally:
                        c2.close()
                time.sleep(0.2)
            else:
                raise HarnessError("cannot re-add %s: %s" % (m.name, last))
            m.in_cluster = True
            m.start(self.initial_cluster(), "existing")
        return {"target": m.name, "id": "%x" % mid, "stopped_itself": stopped_itself}, heal

    def nem_eio(self, rng, sub):
        """Restart a member with a storage call that fails with EIO: it must stop
        (exit 1) or carry on correctly, never lose or invent data."""
        return self.nem_failpoint(rng, sub, action="error(EIO)")

    def nem_failpoint(self, rng, sub, action="crash"):
        m = self.pick_target(rng)
        if m is None:
            return None
        name = sub or rng.choice(FAILPOINTS)
        # snapshots come every --snapshot-count entries and installs are rare:
        # their failpoints fire on an early hit, the others anywhere in 1..40
        if name == "mvcc-before-swap":
            hits = 1
        elif name.startswith("snap"):
            hits = rng.randint(1, 2)
        else:
            hits = rng.randint(1, 40)
        spec = "%s=%d*%s" % (name, hits, action)
        m.kill()
        if name.startswith("snap") or name == "mvcc-before-swap":
            # a snapshot install needs the member to fall behind the others' logs
            # by more than the entries they keep after a snapshot
            self.fill_log(m, self.snapshot_count + 100)
        m.start(self.initial_cluster(), "existing", failpoint=spec)

        def heal():
            self.check_exits()
            crashed = not m.running()
            if m.running():
                m.kill()
            m.start(self.initial_cluster(), "existing")
            self.event("failpoint-restart", target=m.name, crashed=crashed)
        return {"target": m.name, "failpoints": spec}, heal

    def nem_maint(self, rng, sub):
        """Defragment a member, or stream a snapshot from it, while the clients write (the
        copies are slowed by MAINT_FAILPOINTS). A snapshot whose trailing SHA-256 does not
        match what came before it is a failure; the outcome of each call is an event."""
        m = self.pick_target(rng)
        if m is None:
            return None
        call = sub or rng.choice(("defrag", "snapshot"))
        result = {}

        def work():
            c = Conn(m.endpoint)
            try:
                if call == "defrag":
                    c.maint.Defragment(etcdrpc.DefragmentRequest(), timeout=30)
                else:
                    data = b"".join(r.blob for r in c.maint.Snapshot(etcdrpc.SnapshotRequest(),
                                                                     timeout=60))
                    result["bytes"] = len(data)
                    if len(data) < 32 or hashlib.sha256(data[:-32]).digest() != data[-32:]:
                        self.problem("snapshot from %s: %d bytes whose SHA-256 does not match"
                                     % (m.name, len(data)))
                result["ok"] = True
            except grpc.RpcError as e:
                result["error"] = str(e.code())
            finally:
                c.close()
        t = threading.Thread(target=work, daemon=True)
        t.start()

        def heal():
            t.join(timeout=60)
            self.event("maint-done", target=m.name, call=call, **result)
        return {"target": m.name, "call": call}, heal

    def fill_log(self, down, n):
        """Write n small values (outside the checked keys) through the other
        members, so a member that is down falls behind their snapshots."""
        others = [x for x in self.members if x is not down and x.running()]
        if not others:
            return
        c = Conn(others[0].endpoint)
        done = 0
        try:
            while done < n and not self.stop.is_set():
                futs = [c.kv.Put.future(etcdrpc.PutRequest(key=b"fill/%d" % (done + k), value=b"x"),
                                        timeout=5) for k in range(50)]
                for f in futs:
                    try:
                        f.result()
                    except grpc.RpcError:
                        pass
                done += 50
        finally:
            c.close()
        self.event("fill", entries=done, via=others[0].name)

    def nemesis_loop(self, deadline):
        rng = random.Random(self.seed)
        try:
            while not self.stop.is_set():
                quiet = rng.uniform(0.5, 2.5)
                if self.stop.wait(quiet) or time.time() + 3 > deadline:
                    break
                self.check_exits()
                kind, sub = rng.choice(self.nemeses)
                r = getattr(self, "nem_" + kind)(rng, sub)
                if r is None:
                    self.event("skip", nemesis=kind)
                    continue
                desc, heal = r
                self.faults += 1
                self.event("start", nemesis=kind, **desc)
                hold = rng.uniform(1.2, 5.0)
                end = time.time() + hold
                while time.time() < end and not self.stop.is_set():
                    time.sleep(0.1)
                    self.check_exits()
                heal()
                self.event("heal", nemesis=kind)
        except Exception as e:  # noqa: BLE001 - reported as a harness failure
            self.problem("nemesis thread: %s\n%s" % (e, traceback.format_exc()))
            self.stop.set()  # no more faults: end the run now rather than idle to the deadline

    def heal_all(self):
        self.net.heal()
        for m in self.members:
            m.signal(signal.SIGCONT)
        self.check_exits()
        for m in self.members:
            if not m.running() and m.in_cluster:
                m.start(self.initial_cluster(), "existing")

    # -- clients
    def client_loop(self, cid, deadline):
        rng = random.Random(self.seed * 1000 + cid)
        conns = [self.conn(i) for i in range(self.n)]
        cur = rng.randrange(self.n)
        seen = {}
        seq = 0
        try:
            while time.time() < deadline and not self.stop.is_set():
                epoch = int(self.elapsed() // self.args.epoch)
                if self.args.long_keys:
                    # the epoch's keys share their first 479 bytes (one group in cord's key
                    # index); even ones (489 bytes) are stored as they are, odd ones (509)
                    # hashed
                    i = rng.randrange(self.args.keys)
                    key = "k/%04d/%s/%d" % (epoch, "x" * (480 + 20 * (i % 2)), i)
                else:
                    key = "k/%04d/%d" % (epoch, rng.randrange(self.args.keys))
                self.keys.add(key)
                seq += 1
                value = "%d-%d" % (cid, seq)
                r = rng.random()
                kind = "read" if r < 0.4 else "write" if r < 0.7 else "cas" if r < 0.9 else "delete"
                op = {"client": cid, "key": key, "op": kind, "ep": self.members[cur].name}
                if kind in ("write", "cas"):
                    op["value"] = value
                    with self.lock:
                        self.attempted.add(value)
                if kind == "cas":
                    op["expect"] = seen.get(key)
                c = conns[cur]
                kb = key.encode()
                op["start"] = now()
                try:
                    if kind == "read":
                        resp = c.kv.Range(etcdrpc.RangeRequest(key=kb), timeout=OP_TIMEOUT)
                        op["value"] = resp.kvs[0].value.decode() if resp.kvs else None
                        seen[key] = op["value"]
                    elif kind == "write":
                        resp = c.kv.Put(etcdrpc.PutRequest(key=kb, value=value.encode()),
                                        timeout=OP_TIMEOUT)
                        op["rev"] = resp.header.revision
                        seen[key] = value
                    elif kind == "cas":
                        exp = op["expect"]
                        if exp is None:
                            cmp = etcdrpc.Compare(result=etcdrpc.Compare.EQUAL,
                                                  target=etcdrpc.Compare.VERSION, key=kb, version=0)
                        else:
                            cmp = etcdrpc.Compare(result=etcdrpc.Compare.EQUAL,
                                                  target=etcdrpc.Compare.VALUE, key=kb,
                                                  value=exp.encode())
                        put = etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=kb, value=value.encode()))
                        get = etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=kb))
                        resp = c.kv.Txn(etcdrpc.TxnRequest(compare=[cmp], success=[put], failure=[get]),
                                        timeout=OP_TIMEOUT)
                        op["result"] = bool(resp.succeeded)
                        if resp.succeeded:
                            op["rev"] = resp.header.revision
                            seen[key] = value
                        else:
                            kvs = resp.responses[0].response_range.kvs
                            seen[key] = kvs[0].value.decode() if kvs else None
                    else:
                        resp = c.kv.DeleteRange(etcdrpc.DeleteRangeRequest(key=kb), timeout=OP_TIMEOUT)
                        if resp.deleted:
                            op["rev"] = resp.header.revision
                        seen[key] = None
                    op["end"] = now()
                    op["status"] = "ok"
                    if "rev" in op:
                        typ = 1 if kind == "delete" else 0
                        with self.lock:
                            self.acked.append((op["rev"], key, typ, None if typ else value))
                except grpc.RpcError as e:
                    op["end"] = None
                    op["status"] = classify(e, kind != "read")
                    op["error"] = "%s: %s" % (e.code().name, (e.details() or "")[:120])
                    cur = rng.randrange(self.n)
                    time.sleep(0.01)
                self.record(op)
                if rng.random() < 0.05:
                    cur = rng.randrange(self.n)
        except Exception as e:  # noqa: BLE001
            self.problem("client %d: %s\n%s" % (cid, e, traceback.format_exc()))
        finally:
            for c in conns:
                c.close()

    def lease_loop(self, cid, deadline):
        rng = random.Random(self.seed * 7919 + cid)
        n = 0
        try:
            while time.time() < deadline and not self.stop.is_set():
                c = self.conn(rng.randrange(self.n))
                try:
                    ttl = rng.choice((2, 3, 4))
                    try:
                        g = c.lease.LeaseGrant(etcdrpc.LeaseGrantRequest(TTL=ttl), timeout=OP_TIMEOUT)
                    except grpc.RpcError:
                        time.sleep(0.2)
                        continue
                    n += 1
                    key = "lease/%d-%d" % (cid, n)
                    rec = {"id": g.ID, "key": key, "ttl": ttl, "put": "unknown"}
                    with self.lock:
                        self.leases.append(rec)
                    try:
                        c.kv.Put(etcdrpc.PutRequest(key=key.encode(), value=b"v", lease=g.ID),
                                 timeout=OP_TIMEOUT)
                        rec["put"] = "ok"
                    except grpc.RpcError:
                        continue
                    keep_until = time.time() + rng.uniform(0, 2 * ttl)
                    while time.time() < keep_until and not self.stop.is_set():
                        time.sleep(rng.uniform(0.2, 0.6))
                        c2 = self.conn(rng.randrange(self.n))
                        try:
                            t_start = now()
                            it = c2.lease.LeaseKeepAlive(iter([etcdrpc.LeaseKeepAliveRequest(ID=g.ID)]),
                                                         timeout=OP_TIMEOUT)
                            ka = next(it, None)
                            if ka is None or ka.TTL <= 0:
                                break  # expired (a partition can outlast a short TTL)
                            # The lease is alive until at least t_start + TTL: a
                            # linearizable read that ends before then must see its key.
                            rs = now()
                            r = c2.kv.Range(etcdrpc.RangeRequest(key=key.encode()), timeout=OP_TIMEOUT)
                            re_ = now()
                            if not r.kvs and re_ < t_start + int((ttl - 0.2) * 1e9):
                                self.problem("lease %x: key %s missing %.3fs after a keep-alive "
                                             "that reported TTL %d (read %.3f..%.3f)" % (
                                                 g.ID, key, (re_ - t_start) / 1e9, ka.TTL,
                                                 (rs - self.t0) / 1e9, (re_ - self.t0) / 1e9))
                        except grpc.RpcError:
                            pass
                        finally:
                            c2.close()
                finally:
                    c.close()
        except Exception as e:  # noqa: BLE001
            self.problem("lease thread %d: %s\n%s" % (cid, e, traceback.format_exc()))

    def watch_loop(self, w, deadline_fn):
        """Watch every key from revision 1; on any end of the stream (error,
        deadline, cancel) reconnect to a random member from the next revision."""
        rng = random.Random(self.seed * 104729 + w["id"])
        next_rev = 1
        f = open(os.path.join(self.out, "watch-%d.jsonl" % w["id"]), "w")
        try:
            while not deadline_fn(next_rev - 1):
                i = rng.randrange(self.n)
                c = self.conn(i)
                stream, done = watch_all(c, next_rev, rng.uniform(3, 10))
                w["reconnects"] += 1
                f.write(json.dumps({"reconnect": self.members[i].name, "from": next_rev,
                                    "t": round(self.elapsed(), 3)}) + "\n")
                try:
                    for resp in stream:
                        if resp.compact_revision:
                            self.problem("watcher %d: compacted at %d" % (w["id"], resp.compact_revision))
                            return
                        if resp.canceled:
                            break
                        for ev in resp.events:
                            item = event_item(ev)
                            w["events"].append(item)
                            f.write(json.dumps(item) + "\n")
                            next_rev = item[0] + 1
                        if deadline_fn(next_rev - 1):
                            break
                except grpc.RpcError:
                    pass
                finally:
                    done.set()
                    c.close()
                time.sleep(0.05)
        except Exception as e:  # noqa: BLE001
            self.problem("watcher %d: %s\n%s" % (w["id"], e, traceback.format_exc()))
        finally:
            f.close()

    # -- the run
    def run(self):
        os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        os.makedirs(os.path.join(self.out, "data"), exist_ok=True)
        self.history_file = open(os.path.join(self.out, "history.jsonl"), "w")
        self.schedule_file = open(os.path.join(self.out, "schedule.jsonl"), "w")
        self.event("begin", seed=self.seed, members=self.n, nemesis=self.args.nemesis,
                   time=self.args.time, cord=self.cord)
        self.start_cluster()
        self.event("cluster-up")
        fault_deadline = time.time() + self.args.time
        final_rev = {"rev": None}

        def watch_done(last_seen):
            if final_rev["rev"] is not None:
                return last_seen >= final_rev["rev"] or time.time() > final_rev["until"]
            return self.stop.is_set()
        threads = []
        for cid in range(self.args.clients):
            threads.append(threading.Thread(target=self.client_loop, args=(cid, fault_deadline), daemon=True))
        for cid in range(self.args.lease_clients):
            threads.append(threading.Thread(target=self.lease_loop, args=(cid, fault_deadline), daemon=True))
        wthreads = []
        for wid in range(self.args.watchers):
            w = {"id": wid, "events": [], "reconnects": 0}
            self.watchers.append(w)
            wthreads.append(threading.Thread(target=self.watch_loop, args=(w, watch_done), daemon=True))
        nem = threading.Thread(target=self.nemesis_loop, args=(fault_deadline,), daemon=True)
        for t in threads + wthreads + [nem]:
            t.start()
        for t in threads:
            t.join(timeout=self.args.time + 60)
        nem.join(timeout=120)
        self.event("faults-over", faults=self.faults)
        self.heal_all()
        self.event("healed")
        self.wait_leader(60)
        # leases first: their expiry changes the revision, the rest wants it still
        self.check_leases()
        self.event("leases-expired")
        final = self.converge(90)
        final_rev["rev"] = final
        final_rev["until"] = time.time() + 60
        for t in wthreads:
            t.join(timeout=90)
        self.final_reads()
        self.history_file.close()
        self.verdict = self.check_all(final)

    def converge(self, timeout):
        """Wait for all members to agree on leader, applied index and revision."""
        deadline = time.time() + timeout
        agreed = 0
        last = None
        while time.time() < deadline:
            self.check_exits()
            st = self.statuses(timeout=2)
            if len(st) == self.n:
                key = {(s.leader, s.raftIndex, s.header.revision) for s in st.values()}
                if len(key) == 1 and list(key)[0][0] != 0:
                    agreed += 1
                    if agreed >= 3:
                        rev = list(key)[0][2]
                        self.event("converged", revision=rev, raft_index=list(key)[0][1])
                        return rev
                else:
                    agreed = 0
                last = {self.members[i].name: (s.leader, s.raftIndex, s.header.revision)
                        for i, s in st.items()}
            time.sleep(0.3)
        raise HarnessError("members did not converge within %ss: %s" % (timeout, last))

    def final_reads(self):
        """A linearizable read of every key at every member, into the history."""
        for m in self.members:
            for key in sorted(self.keys):
                # each attempt is an operation of its own in the history
                for attempt in range(5):
                    op = {"client": 1000 + m.i, "key": key, "op": "read", "ep": m.name,
                          "start": now()}
                    c = Conn(m.endpoint)
                    try:
                        r = c.kv.Range(etcdrpc.RangeRequest(key=key.encode()), timeout=5)
                        op.update(status="ok", end=now(),
                                  value=r.kvs[0].value.decode() if r.kvs else None)
                    except grpc.RpcError as e:
                        op.update(status="fail", end=None, error=e.code().name)
                        if attempt == 4:
                            self.problem("final read of %s at %s failed: %s" % (key, m.name, e.details()))
                    finally:
                        c.close()
                    self.record(op)
                    if op["status"] == "ok":
                        break
                    time.sleep(0.5)

    # -- checks
    def check_all(self, final):
        verdict = {"seed": self.seed, "members": self.n, "nemesis": self.args.nemesis,
                   "time": self.args.time, "operations": dict(self.counts), "faults": self.faults,
                   "final_revision": final}
        # 1. linearizability
        p = subprocess.run([self.lincheck, os.path.join(self.out, "history.jsonl")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
        verdict["lincheck"] = {0: "linearizable", 1: "violation", 2: "bad input", 3: "unknown"}.get(
            p.returncode, "exit %d" % p.returncode)
        verdict["lincheck_output"] = p.stdout[-3000:]
        if p.returncode != 0:
            self.problem("cord-lincheck: %s\n%s" % (verdict["lincheck"], p.stdout[-3000:]))
        # 2. the revision history of every member, from a fresh watch
        truths = []
        for m in self.members:
            truths.append(self.read_revisions(m, final))
        truth = truths[0]
        for m, t in zip(self.members[1:], truths[1:]):
            if t != truth:
                self.problem("%s's revision history differs from %s's (%d vs %d events)" % (
                    m.name, self.members[0].name, len(t), len(truth)))
        revs = [e[0] for e in truth]
        if revs != list(range(2, final + 1)):
            # every change in this workload touches one key: one event per revision
            missing = sorted(set(range(2, final + 1)) - set(revs))[:10]
            seen, doubled = set(), []
            for e in truth:
                if e[0] in seen:
                    doubled.append([x for x in truth if x[0] == e[0]])
                seen.add(e[0])
            self.problem("revision history is not one event per revision 2..%d: %d events, "
                         "missing e.g. %s, more than one event at e.g. %s" % (
                             final, len(revs), missing, doubled[:3]))
        by_rev = {e[0]: e for e in truth}
        lost = 0
        for rev, key, typ, value in self.acked:
            e = by_rev.get(rev)
            if e is None or e[1] != key or e[2] != typ or (typ == 0 and e[3] != value):
                lost += 1
                if lost <= 5:
                    self.problem("acknowledged %s of %s=%s at revision %d is not in the history "
                                 "(found %s)" % ("delete" if typ else "put", key, value, rev, e))
        verdict["acknowledged_changes"] = len(self.acked)
        verdict["lost"] = lost
        phantom = [e for e in truth if e[1].startswith("k/") and e[2] == 0 and e[3] not in self.attempted]
        if phantom:
            self.problem("%d writes no client asked for, e.g. %s" % (len(phantom), phantom[:3]))
        # 3. watchers
        wv = []
        for w in self.watchers:
            ev = w["events"]
            ok = True
            if not ev:
                self.problem("watcher %d saw no events" % w["id"])
                ok = False
            else:
                first = next((k for k, e in enumerate(truth) if e[0] == ev[0][0]), None)
                if first is None or truth[first:first + len(ev)] != ev:
                    ok = False
                    bad = next((k for k in range(len(ev)) if first is None or first + k >= len(truth)
                                or truth[first + k] != ev[k]), 0)
                    self.problem("watcher %d: event %d is %s, the history has %s there" % (
                        w["id"], bad, ev[bad], truth[first + bad] if first is not None and
                        first + bad < len(truth) else None))
                elif ev[-1][0] != final:
                    ok = False
                    self.problem("watcher %d stopped at revision %d of %d" % (w["id"], ev[-1][0], final))
            wv.append({"events": len(ev), "reconnects": w["reconnects"], "ok": ok})
        verdict["watchers"] = wv
        # 4. leases: every lease key disappears once its lease is left to expire
        verdict["leases"] = len(self.leases)
        ids = {}
        for rec in self.leases:
            ids.setdefault(rec["id"], []).append(rec["key"])
        shared = {"%x" % k: v for k, v in ids.items() if len(v) > 1}
        if shared:
            self.problem("one lease id granted to more than one LeaseGrant: %s" % (
                list(shared.items())[:5],))
        # 5. HashKV at the final revision
        hashes = {}
        for m in self.members:
            try:
                r = call_retry(m.endpoint, lambda c: c.maint.HashKV(
                    etcdrpc.HashKVRequest(revision=final), timeout=10))
                hashes[m.name] = (r.hash, r.compact_revision)
            except grpc.RpcError as e:
                self.problem("HashKV at %s: %s" % (m.name, e.details()))
        verdict["hashkv"] = {k: v[0] for k, v in hashes.items()}
        if len(set(hashes.values())) > 1:
            self.problem("HashKV differs between members at revision %d: %s" % (final, hashes))
        self.check_exits()
        # 6. what the faults did, from the members' logs
        counts = {"elections": 0, "snapshot_installs": 0, "failpoint_crashes": 0, "starts": 0}
        for m in self.members:
            try:
                with open(m.log_path, errors="replace") as f:
                    for line in f:
                        if "installed the leader's snapshot" in line:
                            counts["snapshot_installs"] += 1
                        elif ": leader is now " in line and "leader is now 0000000000000000" not in line:
                            counts["elections"] += 1
                        elif line.startswith("=== "):
                            counts["starts"] += 1
                        elif "failpoint" in line and "crash" in line:
                            counts["failpoint_crashes"] += 1
            except OSError:
                pass
        verdict["from_logs"] = counts
        verdict["problems"] = self.problems
        verdict["ok"] = not self.problems
        return verdict

    def read_revisions(self, m, final):
        """Every event of revisions 2..final as m serves them (a fresh watch from
        revision 1, resumed after a broken connection)."""
        out = []
        last_err = None
        for attempt in range(5):
            if final <= 1 or (out and out[-1][0] >= final):
                break
            c = Conn(m.endpoint)
            stream, done = watch_all(c, out[-1][0] + 1 if out else 1, 120)
            try:
                for resp in stream:
                    out.extend(event_item(ev) for ev in resp.events)
                    if out and out[-1][0] >= final:
                        break
            except grpc.RpcError as e:
                last_err = e
                time.sleep(0.5 * (attempt + 1))
            finally:
                done.set()
                c.close()
        if final > 1 and not (out and out[-1][0] >= final):
            self.problem("reading the revision history of %s: %s" % (
                m.name, last_err.details() if last_err else "stream ended early"))
        return out

    def check_leases(self):
        if not self.leases:
            return
        wait = max(l["ttl"] for l in self.leases) + 3 * ELECTION_MS / 1000 + 2
        deadline = time.time() + wait + 15
        left = None
        c = Conn(self.members[self.wait_leader(30)].endpoint)
        try:
            while time.time() < deadline:
                try:
                    r = c.kv.Range(etcdrpc.RangeRequest(key=b"lease/", range_end=b"lease0"), timeout=5)
                    left = [kv.key.decode() for kv in r.kvs]
                    if not left:
                        break
                except grpc.RpcError:
                    pass
                time.sleep(0.5)
            if left:
                self.problem("%d lease keys still present %.0fs after their leases stopped being "
                             "kept alive, e.g. %s" % (len(left), wait + 15, left[:5]))
            alive = 0
            for rec in self.leases[-50:]:
                try:
                    t = c.lease.LeaseTimeToLive(etcdrpc.LeaseTimeToLiveRequest(ID=rec["id"]), timeout=5)
                    if t.TTL > 0:
                        alive += 1
                except grpc.RpcError:
                    pass
            if alive:
                self.problem("%d leases still alive after they stopped being kept alive" % alive)
        finally:
            c.close()

    def shutdown(self):
        for m in self.members:
            try:
                m.stop()
            except Exception:  # noqa: BLE001
                pass
        self.net.down()


def watch_all(c, start, timeout):
    """A watch of every key from revision start on connection c: the response
    stream, and the event that ends the request stream (set it when done)."""
    done = threading.Event()

    def reqs():
        yield etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(
            key=b"\0", range_end=b"\0", start_revision=start))
        while not done.wait(0.5):
            pass
    return c.watch.Watch(reqs(), timeout=timeout), done


def event_item(ev):
    """(revision, key, type, value) of a watch event; value None for deletes."""
    return (ev.kv.mod_revision, ev.kv.key.decode(), int(ev.type),
            None if ev.type else ev.kv.value.decode())


def call_retry(endpoint, fn, attempts=5, delay=0.5):
    """fn(conn) on a fresh connection, retried: for the checks after the run,
    where a refused or reset connection on a loaded machine says nothing."""
    last = None
    for k in range(attempts):
        c = Conn(endpoint)
        try:
            return fn(c)
        except grpc.RpcError as e:
            last = e
        finally:
            c.close()
        time.sleep(delay * (k + 1))
    raise last


def classify(e, write):
    """What a failed call tells about whether it happened."""
    if not write:
        return "fail"  # a read changes nothing: drop it
    code = e.code()
    details = e.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in details.lower():
        return "fail"  # never reached a member
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return "fail"
    return "unknown"


class Conn:
    OPTS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000), ("grpc.enable_retries", 0)]

    def __init__(self, endpoint):
        self.channel = grpc.insecure_channel(endpoint, options=self.OPTS)
        self.kv = etcdrpc.KVStub(self.channel)
        self.watch = etcdrpc.WatchStub(self.channel)
        self.lease = etcdrpc.LeaseStub(self.channel)
        self.maint = etcdrpc.MaintenanceStub(self.channel)
        self.cluster = etcdrpc.ClusterStub(self.channel)

    def close(self):
        self.channel.close()


def parse_nemeses(spec):
    out = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        kind, _, sub = item.partition(":")
        if kind not in NEMESES:
            raise SystemExit("unknown nemesis %r (choose from %s)" % (kind, ", ".join(NEMESES)))
        if sub and kind == "partition" and sub not in PARTITIONS:
            raise SystemExit("unknown partition %r (choose from %s)" % (sub, ", ".join(PARTITIONS)))
        if sub and kind in ("failpoint", "eio") and sub not in FAILPOINTS:
            raise SystemExit("unknown failpoint %r (choose from %s)" % (sub, ", ".join(FAILPOINTS)))
        if sub and kind not in ("partition", "failpoint", "eio"):
            raise SystemExit("nemesis %s takes no sub-kind" % kind)
        out.append((kind, sub or None))
    if not out:
        raise SystemExit("no nemesis given")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="tests/nemesis/run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--time", type=float, default=60, help="seconds of faults and load (default 60)")
    ap.add_argument("--nemesis", default=",".join(NEMESES),
                    help="comma-separated: kill, pause, partition[:%s], member, failpoint[:NAME], eio[:NAME]"
                         % "|".join(PARTITIONS))
    ap.add_argument("--seed", type=int, default=None, help="seed of the schedule (default: random, printed)")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--watchers", type=int, default=2)
    ap.add_argument("--lease-clients", type=int, default=2)
    ap.add_argument("--keys", type=int, default=5, help="keys per epoch")
    ap.add_argument("--epoch", type=float, default=20, help="seconds before clients move to new keys")
    ap.add_argument("--long-keys", action="store_true",
                    help="clients use keys of about 500 bytes that share their first 479")
    ap.add_argument("--snapshot-count", type=int, default=300)
    ap.add_argument("--log-memory-bytes", type=int, default=None,
                    help="the members' --log-memory-bytes (default: theirs); small values make "
                         "leaders read lagging followers' entries back from the WAL")
    ap.add_argument("--cord", default=os.path.join(ROOT, "build", "cord"))
    ap.add_argument("--lincheck", default=os.path.join(ROOT, "build", "cord-lincheck"))
    ap.add_argument("--out", default=None, help="run directory (default build/nemesis/SEED-TIME)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1 << 31)
    parse_nemeses(args.nemesis)
    if args.out is None:
        args.out = os.path.join(ROOT, "build", "nemesis", "%d-%s" % (args.seed, time.strftime("%Y%m%dT%H%M%S")))
    if os.geteuid() != 0:
        print("tests/nemesis/run needs root (network namespaces and iptables)", file=sys.stderr)
        return 2
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            print("tests/nemesis/run needs %s (make deps installs it)" % tool, file=sys.stderr)
            return 2
    rerun = "tests/nemesis/run --time %g --nemesis %s --seed %d --members %d" % (
        args.time, args.nemesis, args.seed, args.members)
    if args.long_keys:
        rerun += " --long-keys"
    if os.path.abspath(args.cord) != os.path.join(ROOT, "build", "cord"):
        rerun += " --cord %s" % args.cord
    if os.path.exists(os.path.join(args.out, "verdict.json")) or os.path.exists(os.path.join(args.out, "data")):
        print("tests/nemesis/run: %s holds an earlier run; choose another --out" % args.out, file=sys.stderr)
        return 2
    print("nemesis run: seed %d, output in %s" % (args.seed, args.out), flush=True)
    os.makedirs(args.out, exist_ok=True)

    cleanup_stale_namespaces()
    h = Harness(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)
    try:
        h.net.up()
        enter_netns(h.net.hub)
        global grpc, etcdrpc
        import grpc  # noqa: E402 - after setns, so every socket lives in the hub
        from etcd3 import etcdrpc  # noqa: E402
        h.run()
    except HarnessError as e:
        h.problem("harness: %s" % e)
    except KeyboardInterrupt:
        h.problem("interrupted")
    except Exception as e:  # noqa: BLE001
        h.problem("harness: %s\n%s" % (e, traceback.format_exc()))
    finally:
        h.stop.set()
        h.shutdown()
    return finish(h, args, rerun)


def finish(h, args, rerun):
    v = getattr(h, "verdict", None) or {"seed": args.seed, "problems": h.problems, "ok": False}
    v["problems"] = h.problems
    v["ok"] = not h.problems
    v["rerun"] = rerun
    with open(os.path.join(args.out, "verdict.json"), "w") as f:
        json.dump(v, f, indent=1)
    ops = v.get("operations", {})
    print("nemesis run: %s; %d operations (%s), %d faults, final revision %s; lincheck: %s" % (
        "PASS" if v["ok"] else "FAIL", sum(ops.values()) if ops else 0,
        ", ".join("%s %d" % kv for kv in sorted(ops.items())), v.get("faults", 0),
        v.get("final_revision"), v.get("lincheck")), flush=True)
    if not v["ok"]:
        for p in h.problems[:20]:
            print("  - " + p.replace("\n", "\n    "), flush=True)
        print("rerun: %s\noutput: %s" % (rerun, args.out), flush=True)
    if h.problems and v.get("lincheck") is None:
        return 2 if any(p.startswith("harness:") for p in h.problems) else 1
    return 0 if v["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
