#!/bin/sh
# cli.sh CORD_SIM: the command-line contract (help, usage errors, exit codes).
set -u
sim=$1
"$sim" --help | grep -q -- '--inject-bug' || { echo "FAIL: --help"; exit 1; }
"$sim" --bogus > /dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] || { echo "FAIL: bad argument exits $rc, want 2"; exit 1; }
"$sim" --inject-bug no-such-bug > /dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] || { echo "FAIL: unknown bug exits $rc, want 2"; exit 1; }
"$sim" --nodes 8 > /dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] || { echo "FAIL: --nodes 8 exits $rc, want 2"; exit 1; }
out=$("$sim" --seeds 3 --nodes 3) || { echo "FAIL: 3 seeds"; exit 1; }
printf '%s\n' "$out" | grep -Eq '^seeds 3 .*failed 0' || { echo "FAIL: totals: $out"; exit 1; }
printf '%s\n' "$out" | grep -Eq '^operations [0-9]+ .*faults [0-9]+, elections [0-9]+' || { echo "FAIL: totals: $out"; exit 1; }
echo "ok"
