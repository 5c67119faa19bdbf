/*
 * lincheck.h: a linearizability checker for histories of a key-value
 * register (read, write, compare-and-swap, delete on string keys).
 *
 * A history is a list of operations, each with the interval [start, end] in
 * which a client waited for it, and what the client saw. The checker decides
 * whether some total order of the operations (a linearization) explains every
 * observation while respecting real time: an operation that completed before
 * another began comes first.
 *
 * How it works. Keys are independent registers, so each key is checked on
 * its own (P-compositionality; Herlihy & Wing). For one key the checker runs
 * the Wing & Gong search as improved by Lowe (WGL), the algorithm of Knossos
 * and porcupine: walk the call/return events in time order, linearize a
 * pending call when the model allows it, backtrack when a return is reached
 * whose operation could not be placed, and memoize every configuration (set
 * of linearized operations, register value) already explored so no subtree
 * is searched twice. The set is kept as a 128-bit Zobrist hash updated in
 * O(1) per step; two different configurations sharing a hash (chance about
 * n^2 / 2^128 for n memo entries) could only prune a branch, which could only
 * turn OK into a false VIOLATION, never a violation into OK.
 *
 * Operations whose status is "unknown" are what makes such searches blow up
 * (each may or may not have happened, anywhere after its start), so they are
 * first simplified without changing the answer:
 *   - an unknown read observes nothing and is dropped;
 *   - an unknown write/cas whose value was written by no other operation and
 *     was observed (by an ok read, or an ok cas that swapped from it) must
 *     have happened before the first such observer returned: it becomes an
 *     ok operation ending there;
 *   - an unknown write/cas/delete whose value nobody could have observed
 *     after it began (no ok read of it, no cas expecting it, no ok cas that
 *     failed) is dropped: not happening is always a valid choice for it;
 *   - values no read returns and no cas expects are all alike.
 * The search then places the remaining unknown operations lazily: after the
 * ok candidates, only where one enables the next ok operation, with
 * look-alike operations taken in call order, and a configuration that used
 * fewer of them counting as covering one that used more. Each rule rests on
 * rewriting any linearization into one that obeys it (see lincheck.c); the
 * unit tests compare the result with exhaustive searches.
 *
 * Conventions.
 *   - Every key starts absent. A value is a byte string; NULL means absent.
 *   - Intervals are closed: if A.end == B.start, A and B count as
 *     concurrent (the permissive choice: coarse clocks never cause a false
 *     violation).
 *   - Search effort is bounded per key (steps and memo entries). Running
 *     out gives LINCHECK_UNKNOWN, never LINCHECK_OK.
 *   - No global state: distinct histories may be used from distinct threads.
 *
 * Errors: functions that can fail return 0 on success or one of the negative
 * LINCHECK_E* codes below; lincheck_strerror() names them.
 */
#ifndef CORD_LINCHECK_H
#define CORD_LINCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes (negative; 0 is success). */
enum lincheck_error {
    LINCHECK_ENOMEM = -1,  /* allocation failed */
    LINCHECK_EINVAL = -2,  /* an argument or operation is malformed */
    LINCHECK_EIO = -3,     /* a file could not be opened or read */
    LINCHECK_EPARSE = -4,  /* a JSON line is malformed */
    LINCHECK_ETOOBIG = -5, /* a limit on history size was reached */
};

/* Operation kinds. */
typedef enum lincheck_kind {
    LINCHECK_READ = 0,   /* value = what was observed (NULL: absent) */
    LINCHECK_WRITE = 1,  /* value = what was written (never NULL) */
    LINCHECK_CAS = 2,    /* if current == expect then current = value */
    LINCHECK_DELETE = 3, /* current = absent */
} lincheck_kind;

/* What the client knows about the operation. */
typedef enum lincheck_status {
    LINCHECK_STATUS_OK = 0,      /* it happened and its result is known */
    LINCHECK_STATUS_FAIL = 1,    /* it certainly did not happen: ignored */
    LINCHECK_STATUS_UNKNOWN = 2, /* it may have happened any time after start, or never */
} lincheck_status;

/* Verdicts of lincheck_check(). The numbers are not the command's exit codes
 * (those are 0 ok, 1 violation, 2 bad input, 3 unknown). */
typedef enum lincheck_verdict {
    LINCHECK_OK = 0,        /* every key has a linearization */
    LINCHECK_VIOLATION = 1, /* some key has none (result.key says which) */
    LINCHECK_UNKNOWN = 2,   /* no violation found, but a search limit was reached */
} lincheck_verdict;

/* Why a verdict is LINCHECK_UNKNOWN. */
typedef enum lincheck_limit {
    LINCHECK_LIMIT_NONE = 0,
    LINCHECK_LIMIT_STEPS = 1, /* max_steps_per_key was reached */
    LINCHECK_LIMIT_MEMO = 2,  /* max_memo_entries_per_key was reached */
} lincheck_limit;

/* "No end time": the end field of an operation whose response never came. */
#define LINCHECK_TIME_NONE UINT64_MAX

/* Bounds on what a history may hold. */
#define LINCHECK_MAX_OPS        (1u << 28) /* operations per history */
#define LINCHECK_MAX_STRING_LEN (1u << 20) /* bytes in one key or value */
#define LINCHECK_MAX_LINE_LEN   (4u << 20) /* bytes in one JSON line */

/* Defaults used when an option is 0. */
#define LINCHECK_DEFAULT_MAX_STEPS 50000000ull
#define LINCHECK_DEFAULT_MAX_MEMO  4000000ull /* about 100 bytes each, at most */

/* One operation as the caller describes it. Strings are borrowed for the
 * duration of lincheck_history_add(), which copies them. A string is
 * (pointer, length); a length of 0 means "use strlen(pointer)" (so C strings
 * need no length, and "" is still the empty string). */
typedef struct lincheck_op {
    uint64_t id;     /* caller's label, used in explanations; need not be unique */
    uint64_t client; /* caller's label, used in explanations */
    lincheck_kind kind;
    lincheck_status status;
    const char *key; /* never NULL */
    size_t key_len;
    const char *value; /* read: observed (NULL absent); write/cas: new value (not NULL) */
    size_t value_len;
    const char *expect; /* cas only: expected current value (NULL: absent) */
    size_t expect_len;
    bool cas_result; /* cas with status ok: true swapped, false compare failed */
    uint64_t start;  /* when the request was sent */
    uint64_t end;    /* when the response came; LINCHECK_TIME_NONE if never.
                      * Required (and >= start) for status ok; ignored for
                      * unknown (taken as +infinity) and fail. */
} lincheck_op;

/* Limits for lincheck_check(). Zero fields (or a NULL pointer) take the
 * defaults above. */
typedef struct lincheck_options {
    uint64_t max_steps_per_key;        /* search loop iterations for one key */
    uint64_t max_memo_entries_per_key; /* memoized configurations for one key */
} lincheck_options;

#define LINCHECK_EXPLAIN_MAX 4096

/* What lincheck_check() found. Filled entirely by it. */
typedef struct lincheck_result {
    lincheck_verdict verdict;
    lincheck_limit limit;  /* LINCHECK_UNKNOWN: which limit; else NONE */
    uint64_t keys_checked; /* keys searched (all of them unless a violation stopped early) */
    uint64_t ops_total;    /* operations in the history, including failed ones */
    uint64_t ops_checked;  /* operations of searched keys that were not failed */
    uint64_t steps;        /* search steps over all searched keys */
    /* VIOLATION or UNKNOWN: the key concerned (the first violating key, or
     * else the first key that hit a limit). Points into the history: valid
     * until it is reset or freed. NULL when verdict is OK. */
    const char *key;
    size_t key_len;
    /* VIOLATION: id of the operation that could not be linearized (the one
     * whose response the search could never get past). 0 otherwise. */
    uint64_t op_id;
    /* Human-readable account (NUL-terminated, possibly truncated with
     * "..."): for a violation, the operation, the values the key could have
     * held just before its response, the operations concurrent with it and
     * the last writes completed before it began; for unknown, the limit. */
    char explanation[LINCHECK_EXPLAIN_MAX];
} lincheck_result;

typedef struct lincheck_history lincheck_history;

/* Return a static English description of an error code (or "success"). */
const char *lincheck_strerror(int rc);

/* Create an empty history. Returns NULL if out of memory. */
lincheck_history *lincheck_history_new(void);

/* Free a history and everything it owns. NULL is allowed. */
void lincheck_history_free(lincheck_history *h);

/* Remove every operation, keeping allocated memory for reuse (a simulator
 * checking one run after another). Pointers from earlier results become
 * invalid. */
void lincheck_history_reset(lincheck_history *h);

/* Number of operations added so far (including failed ones). */
size_t lincheck_history_count(const lincheck_history *h);

/* Append a copy of `op`.
 * Returns 0, or:
 *   LINCHECK_EINVAL  h or op NULL; key NULL; kind or status out of range;
 *                    write/cas without a value; status ok without an end,
 *                    or with end < start or end == LINCHECK_TIME_NONE
 *   LINCHECK_ETOOBIG a string longer than LINCHECK_MAX_STRING_LEN, or the
 *                    history already holds LINCHECK_MAX_OPS operations
 *   LINCHECK_ENOMEM  allocation failed
 * On error the history is unchanged. */
int lincheck_history_add(lincheck_history *h, const lincheck_op *op);

/* Parse one JSON object (the JSON-lines record format below) and append the
 * operation. `line` need not be NUL-terminated; a trailing newline is fine.
 * On error writes a message (NUL-terminated, at most errlen bytes; err may be
 * NULL when errlen is 0) and leaves the history unchanged.
 * Returns 0, LINCHECK_EPARSE (malformed JSON, or a field missing, of the wrong
 * type or out of range), LINCHECK_ETOOBIG, or LINCHECK_ENOMEM.
 *
 * Record format: one flat object per line.
 *   "id"      integer >= 0                     required
 *   "client"  integer >= 0                     required
 *   "key"     string                           required
 *   "op"      "read" | "write" | "cas" | "delete"   required
 *   "status"  "ok" | "fail" | "unknown"        required
 *   "start"   integer >= 0                     required
 *   "end"     integer >= start, or null        required when status is ok
 *   "value"   read: string or null (observed; required when ok);
 *             write, cas: string (required); delete: absent or null
 *   "expect"  cas: string or null (required)
 *   "result"  cas: true or false (required when status is ok)
 * Other fields are ignored when their values are scalars; nested objects and
 * arrays are rejected. Duplicate field names are rejected. */
int lincheck_history_add_jsonl(lincheck_history *h, const char *line, size_t len, char *err,
                               size_t errlen);

/* Read a JSON-lines file (path "-" means stdin): one record per line as for
 * lincheck_history_add_jsonl(); blank lines are skipped. Stops at the first
 * bad line with a message naming its line number ("FILE:LINE: ..."). On
 * error no operation from the file stays in the history.
 * Returns 0, LINCHECK_EINVAL (NULL argument), LINCHECK_EIO (cannot open or
 * read), LINCHECK_EPARSE, LINCHECK_ETOOBIG (line longer than
 * LINCHECK_MAX_LINE_LEN, or too many operations), or LINCHECK_ENOMEM. */
int lincheck_history_load_jsonl(lincheck_history *h, const char *path, char *err, size_t errlen);

/* Check the history. `opt` may be NULL (defaults). Fills *res (see
 * lincheck_result); keys are checked in order of first appearance and the
 * check stops at the first violating key. The history is not modified and
 * may be checked again or extended afterwards.
 * Returns 0 (the verdict is in res->verdict), LINCHECK_EINVAL (h or res NULL),
 * or LINCHECK_ENOMEM (res is then undefined). */
int lincheck_check(const lincheck_history *h, const lincheck_options *opt, lincheck_result *res);

#endif
