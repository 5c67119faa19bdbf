/*
 * failpoint.h: named places in the code where a test can make the process
 * crash or a system call fail, to prove what survives.
 *
 * Configuration comes from the environment variable CORD_FAILPOINTS, read
 * once at the first failpoint_hit() of the process, or from
 * failpoint_configure(). Grammar (no spaces):
 *
 *     spec   := item ("," item)*
 *     item   := name "=" [N "*"] action
 *     action := "off" | "crash" | "error" ["(" errno-name-or-number ")"]
 *             | "sleep(" milliseconds ")"
 *
 *     CORD_FAILPOINTS=wal-before-fsync=crash,snap-before-rename=error
 *     CORD_FAILPOINTS=wal-before-write=error(ENOSPC),wal-after-fsync=3*crash
 *
 * crash  : _exit(FAILPOINT_CRASH_EXIT_CODE) at once: no atexit handlers, no
 *          stdio flush. What the process wrote with write() stays in the page
 *          cache (as after a process crash), what it had not written is lost.
 * error  : the failpoint returns an errno (EIO unless given) that the code
 *          treats as if the system call at that point had failed.
 * sleep  : the hitting thread sleeps that long (1-600000 ms), then goes on as
 *          if nothing were configured: for tests that need a slow step.
 * N*act  : the action fires on the Nth hit only (N >= 1); other hits pass.
 *          Without N it fires on every hit.
 *
 * Cost when nothing is configured: one atomic load per hit. The table is the
 * only global mutable state in cord; hits may come from any thread.
 *
 * Names used so far (grep failpoint_ for the full list):
 *   wal-before-write wal-after-write wal-torn-write wal-before-fsync
 *   wal-after-fsync wal-before-segment-fsync wal-before-segment-rename
 *   wal-after-segment-rename wal-before-cut-truncate wal-before-tail-repair
 *   wal-before-release-unlink
 *   snap-before-write snap-before-fsync snap-before-rename snap-after-rename
 *   lease-before-expiry-revoke (error: the leader skips that revoke this time)
 *   storage-copy-store (storage_copy_store, on Maintenance.Snapshot's worker)
 *   maint-defrag-copy (after Defragment's copy, on its worker)
 */
#ifndef CORD_COMMON_FAILPOINT_H
#define CORD_COMMON_FAILPOINT_H

#include <stdint.h>

#include "common/errors.h"

#define FAILPOINT_ENV             "CORD_FAILPOINTS"
#define FAILPOINT_CRASH_EXIT_CODE 86
#define FAILPOINT_TABLE_MAX       32
#define FAILPOINT_NAME_MAX        64 /* including the terminating NUL */
#define FAILPOINT_SPEC_MAX        4096

enum failpoint_status {
    FAILPOINT_OK = 0,
    FAILPOINT_EINVAL = -1, /* malformed spec, unknown errno name, too many items */
};

enum failpoint_action {
    FAILPOINT_NONE = 0, /* pass */
    FAILPOINT_ERROR = 1,
    FAILPOINT_CRASH = 2,
    FAILPOINT_SLEEP = 3, /* failpoint_eval has already slept */
};

/*
 * failpoint_hit: pass the failpoint `name`.
 * Returns: 0 to go on, or the injected errno (> 0) for an "error" action.
 * A "crash" action does not return. A malformed CORD_FAILPOINTS is reported
 * on stderr and aborts the process at the first hit (a test that set it
 * must not silently run without its faults).
 */
int failpoint_hit(const char *name);

/*
 * failpoint_eval: like failpoint_hit (counts the hit) but performs nothing
 * except a sleep: returns the action that fires at this hit and, for
 * FAILPOINT_ERROR, stores the errno in *err_out (may be NULL). For code that
 * must do something before crashing (e.g. write half a buffer first).
 */
enum failpoint_action failpoint_eval(const char *name, int *err_out);

/* failpoint_crash: report "failpoint NAME: crash" on stderr and _exit. */
__attribute__((noreturn)) void failpoint_crash(const char *name);

/*
 * failpoint_configure: replace the whole table with `spec` (NULL or "" clears
 * it); hit counters restart at 0. The environment is then no longer read.
 * Not safe while other threads may be hitting failpoints: configure before
 * starting them (tests do it between cases).
 * Returns: FAILPOINT_OK, or FAILPOINT_EINVAL (table left empty).
 */
int failpoint_configure(const char *spec, cord_error *err);

/* failpoint_count: how many times the configured failpoint `name` has been
 * hit (fired or not) since it was configured; 0 if it is not configured. */
uint64_t failpoint_count(const char *name);

#endif
