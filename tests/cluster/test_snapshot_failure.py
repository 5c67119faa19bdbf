"""A snapshot whose copy cannot be written (a full disk: ENOSPC, injected with a failpoint) is
not taken, and that is all: the member keeps serving, says so in its log and /metrics, waits
before it tries again (2 s, doubling), and then takes the snapshot."""
import re
import time

import pytest

from conftest import Cluster


def test_snapshot_write_failure_is_not_fatal(tmp_path):
    etcd3 = pytest.importorskip("etcd3")
    c = Cluster(tmp_path, 1)
    m = c.members[0]
    # the first write of a snapshot file fails with ENOSPC; the core asks for a snapshot once
    # 100 entries are applied, and again at every batch until one is taken
    m.start(c.initial, extra=("--snapshot-count", "100"),
            env={"CORD_FAILPOINTS": "snap-before-write=1*error(ENOSPC)"})
    try:
        c.wait_healthy()
        cl = etcd3.client(host="127.0.0.1", port=m.client_port, timeout=10)
        for i in range(110):
            cl.put("sf/%03d" % i, "v%d" % i)
        deadline = time.time() + 20
        while time.time() < deadline and m.metric("cord_snapshot_failures_total") < 1:
            time.sleep(0.05)
        assert m.metric("cord_snapshot_failures_total") == 1
        log = open(m.log_path, "rb").read().decode(errors="replace")
        assert re.search(r"snapshot not taken \(.*No space left on device.*\); the next one "
                         r"will be tried in 2000 ms", log), log[-2000:]
        # within the backoff, batches that would ask for a snapshot do not start one
        for i in range(110, 120):
            cl.put("sf/%03d" % i, "v%d" % i)
        time.sleep(0.3)
        assert m.snap_files() == []
        assert m.proc.poll() is None
        # after it, the next batch does
        time.sleep(2.0)
        for i in range(120, 130):
            cl.put("sf/%03d" % i, "v%d" % i)
        deadline = time.time() + 20
        while time.time() < deadline and not m.snap_files():
            time.sleep(0.05)
        assert m.snap_files(), "no snapshot after the failed one"
        assert m.metric("cord_snapshot_failures_total") == 1
        got = {md.key.decode(): v.decode() for v, md in cl.get_prefix("sf/")}
        assert got == {"sf/%03d" % i: "v%d" % i for i in range(130)}
        cl.close()
        assert m.proc.poll() is None
    finally:
        assert c.stop() == [0]
