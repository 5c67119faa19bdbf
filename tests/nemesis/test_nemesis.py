"""The bounded nemesis suite of `make test`: one short run per kind of fault
against real cord processes in network namespaces, and the proof that the
harness can fail (a build with a stale read path is caught under partitions
that the normal build survives). Long soaks: tests/nemesis/run --time ...
"""
import json
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORD = os.environ.get("CORD_BIN", os.path.join(ROOT, "build", "cord"))
UNSAFE = os.environ.get("CORD_UNSAFE_BIN", os.path.join(ROOT, "build", "cord-unsafe-reads"))
LINCHECK = os.environ.get("CORD_LINCHECK_BIN", os.path.join(ROOT, "build", "cord-lincheck"))
SECONDS = float(os.environ.get("CORD_NEMESIS_SECONDS", "20"))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


def nemesis(tmp_path, nemesis, seed, cord=CORD, seconds=SECONDS, extra=()):
    out = tmp_path / ("%s-%s-%d" % (os.path.basename(cord), nemesis.replace(",", "+").replace(":", "-"),
                                    seed))
    cmd = [os.path.join(HERE, "run"), "--time", str(seconds), "--nemesis", nemesis,
           "--seed", str(seed), "--cord", cord, "--lincheck", LINCHECK, "--out", str(out)]
    cmd += list(extra)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=seconds + 300)
    print(p.stdout)
    with open(out / "verdict.json") as f:
        verdict = json.load(f)
    return p.returncode, verdict, p.stdout


def assert_passed(rc, verdict, output):
    assert rc == 0 and verdict["ok"], output
    assert verdict["lincheck"] == "linearizable"
    assert verdict["lost"] == 0
    # the run did real work under real faults
    assert verdict["faults"] >= 2, verdict
    assert verdict["operations"]["ok"] >= 300, verdict
    assert verdict["acknowledged_changes"] >= 100, verdict
    assert all(w["ok"] and w["events"] > 0 for w in verdict["watchers"]), verdict
    assert len(set(verdict["hashkv"].values())) == 1, verdict


@pytest.mark.parametrize("kind,seed", [("kill", 101), ("pause", 102), ("partition", 103),
                                       ("member", 104), ("failpoint", 105), ("eio", 107),
                                       ("maint", 108)])
def test_nemesis(tmp_path, kind, seed):
    # members that join get the store by snapshot: with long keys, to carry hashed ones
    extra = ["--long-keys"] if kind == "member" else []
    assert_passed(*nemesis(tmp_path, kind, seed, extra=extra))


def test_unsafe_reads_are_caught(tmp_path):
    """Linearizable reads answered locally (cord-unsafe-reads) go stale on an
    isolated member; the checker must reject such a history. The normal build
    must pass the very same schedule."""
    schedule = "partition:isolate"
    verdicts = []
    for seed in (201, 202, 203):
        rc, v, out = nemesis(tmp_path, schedule, seed, cord=UNSAFE, seconds=15)
        verdicts.append((seed, rc, v.get("lincheck")))
        if rc == 1 and v.get("lincheck") == "violation":
            break
    else:
        pytest.fail("the stale read path was never caught: %s" % verdicts)
    seed = verdicts[-1][0]
    assert "NOT linearizable" in v["lincheck_output"]
    assert "rerun: " in out and "--seed %d" % seed in out
    rc, v, out = nemesis(tmp_path, schedule, seed, cord=CORD, seconds=15)
    assert rc == 0 and v["ok"] and v["lincheck"] == "linearizable", out


def test_all_nemeses(tmp_path):
    """Every kind of fault in one schedule (the sanitizer build runs this one)."""
    assert_passed(*nemesis(tmp_path, "kill,pause,partition,member,failpoint,eio,maint", 106, seconds=30,
                           extra=["--long-keys"]))
