#!/bin/sh
# expect_violation.sh CORD_SIM BUG SEEDS [NODES]
#
# Proof that the simulator's checks bite: with the deliberate defect BUG
# switched on in its copy of the core, `cord-sim --inject-bug BUG --seeds
# SEEDS` must stop with a clean property violation: exit status 1, a
# "VIOLATION of <property>" report and a reproduce line. A crash, an abort or
# a sanitizer report is not a catch (its exit status differs, and sanitizer
# reports are looked for explicitly since AddressSanitizer also exits 1 by
# default).
set -u
sim=$1
bug=$2
seeds=$3
nodes=${4:-3}
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=87:print_stacktrace=1"
export ASAN_OPTIONS UBSAN_OPTIONS
out=$("$sim" --inject-bug "$bug" --seeds "$seeds" --nodes "$nodes" 2>&1)
rc=$?
printf '%s\n' "$out" | tail -n 12
fail() {
    echo "FAIL: --inject-bug $bug: $1"
    exit 1
}
if printf '%s\n' "$out" | grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:|Assertion .* failed'; then
    fail "the run crashed (sanitizer report or failed assertion), which is not a catch"
fi
[ "$rc" -eq 1 ] || fail "exit status $rc; a caught bug exits 1, anything else is a crash or an error"
printf '%s\n' "$out" | grep -q 'VIOLATION of ' || fail "exit 1 without a violation report"
printf '%s\n' "$out" | grep -q '^reproduce: .* --inject-bug '"$bug" || fail "no reproduce line"
seed=$(printf '%s\n' "$out" | sed -n 's/^seed \([0-9]*\): VIOLATION of \([a-z-]*\).*/seed \1 (\2)/p' | head -n 1)
echo "caught --inject-bug $bug at $seed within $seeds seeds"
