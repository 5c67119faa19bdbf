/* storage_test: a single-member cluster (raft with a bootstrap configuration
 * of itself) driven in a loop over src/server/storage: restart from disk,
 * snapshots, a store that fell behind its snapshot, a corrupt WAL, and crash
 * points: a child process (this binary, re-executed with CORD_FAILPOINTS in
 * its environment) writes until a failpoint kills it, reporting every
 * acknowledged put over a pipe; the parent reopens the directory and checks
 * that nothing acknowledged is lost and nothing was applied twice. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/failpoint.h"
#include "common_testutil.h"
#include "server/storage.h"

#define DRIVE_LIMIT 10000
#define ELECT_TICKS 500
#define MAX_LIVES   3
#define MAX_PUTS    4096
#define VALUE_PAD   40

/* ------------------------------------------------------------ a member */

typedef struct node {
    storage *st;
    raft *r;
    storage_options opts;
    uint64_t snapshot_entries;
} node;

/* What the apply callback saw. */
typedef struct acks {
    int fd;           /* child: report here; -1: do not report */
    uint64_t puts;    /* PUT entries applied with MVCC_OK */
    uint64_t deletes; /* DELETE entries applied */
    uint64_t bad;     /* entries whose result was not OK */
} acks;

typedef struct ack_msg {
    uint32_t life;
    uint32_t num;
} ack_msg;

static void on_apply(void *ctx, const storage_applied *a)
{
    acks *k = ctx;
    if (k == NULL) {
        return;
    }
    if (a->cmd.op == STORAGE_CMD_PUT) {
        if (a->result != MVCC_OK) {
            k->bad++;
            return;
        }
        k->puts++;
        unsigned life = 0, num = 0;
        char key[64];
        size_t kl = a->cmd.key_len < sizeof key - 1 ? a->cmd.key_len : sizeof key - 1;
        memcpy(key, a->cmd.key, kl);
        key[kl] = '\0';
        if (k->fd >= 0 && sscanf(key, "L%u-%u", &life, &num) == 2) {
            ack_msg m = {.life = life, .num = num};
            if (write(k->fd, &m, sizeof m) != (ssize_t)sizeof m) {
                _exit(7);
            }
        }
    } else if (a->cmd.op == STORAGE_CMD_DELETE) {
        k->deletes++;
    }
}

/* The store commits without fsync (as the member runs it). */
static bool open_no_sync;
/* storage_options.snapshot_image_max_free_percent (0: the default; 100: snapshots are always
 * the store's file as it is, not a compacting copy). */
static unsigned image_free_percent;

/* Opens storage and core; returns the storage status (the core must start). */
static int node_open_member(node *n, const char *dir, raft_id id, uint32_t n_voters,
                            uint64_t snapshot_entries, uint64_t segment_bytes, cord_error *err)
{
    memset(n, 0, sizeof(*n));
    n->opts.wal.segment_bytes = segment_bytes;
    n->opts.mvcc.quota_bytes = 64ull << 20;
    n->opts.mvcc.map_size_bytes = 256ull << 20;
    n->opts.mvcc.no_sync = open_no_sync;
    n->opts.snapshot_image_max_free_percent = image_free_percent;
    n->snapshot_entries = snapshot_entries;
    int rc = storage_open(dir, &n->opts, &n->st, err);
    if (rc != STORAGE_OK) {
        return rc;
    }
    raft_config cfg;
    raft_config_default(&cfg);
    cfg.id = id;
    cfg.seed = 42;
    cfg.snapshot_entries = snapshot_entries;
    cfg.trailing_entries = 4;
    cfg.snapshot_chunk_bytes = 4096;
    raft_conf boot;
    memset(&boot, 0, sizeof boot);
    boot.n_voters = n_voters;
    for (uint32_t i = 0; i < n_voters; i++) {
        boot.voters[i] = i + 1;
    }
    char why[256] = "";
    n->r = raft_new(&cfg, &boot, storage_restore(n->st), why, sizeof why);
    if (n->r == NULL) {
        fprintf(stderr, "raft_new: %s\n", why);
    }
    assert_non_null(n->r);
    storage_restore_release(n->st);
    return STORAGE_OK;
}

static int node_open(node *n, const char *dir, uint64_t snapshot_entries, uint64_t segment_bytes,
                     cord_error *err)
{
    return node_open_member(n, dir, 1, 1, snapshot_entries, segment_bytes, err);
}

static void node_close(node *n)
{
    raft_free(n->r);
    storage_close(n->st);
    n->r = NULL;
    n->st = NULL;
}

/* Where a batch's messages go (before raft_advance: they die there). */
typedef void (*send_fn)(void *ctx, node *from, const raft_msg *m);
static send_fn drive_send;
static void *drive_send_ctx;

/* Runs the loop until the core has no output. Returns the storage status. */
static int node_drive(node *n, acks *k, cord_error *err)
{
    for (int i = 0; i < DRIVE_LIMIT && raft_has_ready(n->r); i++) {
        struct raft_ready rd;
        raft_ready(n->r, &rd);
        bool want = rd.want_snapshot;
        int rc = storage_handle_ready(n->st, &rd, on_apply, k, err);
        for (uint32_t m = 0; rc == STORAGE_OK && drive_send != NULL && m < rd.n_messages; m++) {
            drive_send(drive_send_ctx, n, &rd.messages[m]);
        }
        raft_advance(n->r, &rd);
        if (rc != STORAGE_OK) {
            return rc;
        }
        raft_persisted(n->r, rd.seq);
        if (want) {
            rc = storage_take_snapshot(n->st, n->r, err);
            if (rc != STORAGE_OK) {
                return rc;
            }
        }
    }
    assert_false(raft_has_ready(n->r));
    return STORAGE_OK;
}

static void drive_ok(node *n, acks *k)
{
    cord_error err;
    int rc = node_drive(n, k, &err);
    if (rc != STORAGE_OK) {
        fprintf(stderr, "drive: %s: %s\n", storage_status_name(rc), err.msg);
    }
    assert_int_equal(rc, STORAGE_OK);
}

/* Ticks until this member leads and everything it has is applied. */
static void node_elect(node *n, acks *k)
{
    for (int t = 0; t < ELECT_TICKS; t++) {
        raft_status s;
        raft_get_status(n->r, &s);
        if (s.role == RAFT_LEADER && s.applied == s.last_index) {
            return;
        }
        raft_tick(n->r);
        drive_ok(n, k);
    }
    fail_msg("no leader after %d ticks", ELECT_TICKS);
}

static void put_key(char *key, size_t cap, unsigned life, unsigned num)
{
    snprintf(key, cap, "L%u-%05u", life, num);
}

static void put_value(char *val, size_t cap, unsigned life, unsigned num)
{
    snprintf(val, cap, "value-%u-%u-%0*u", life, num, VALUE_PAD, num * 7919u);
}

static void propose_put(node *n, const char *key, const char *val)
{
    uint8_t buf[512];
    size_t len =
        storage_cmd_encode_put(buf, key, (uint32_t)strlen(key), val, (uint32_t)strlen(val));
    assert_int_equal(raft_propose(n->r, buf, (uint32_t)len), RAFT_OK);
}

static void propose_delete(node *n, const char *key)
{
    uint8_t buf[512];
    size_t len = storage_cmd_encode_delete(buf, key, (uint32_t)strlen(key));
    assert_int_equal(raft_propose(n->r, buf, (uint32_t)len), RAFT_OK);
}

/* Puts life/num for num in [from, to), `per_batch` proposals per drive. */
static void put_range(node *n, acks *k, unsigned life, unsigned from, unsigned to,
                      unsigned per_batch)
{
    char key[64], val[128];
    for (unsigned i = from; i < to;) {
        for (unsigned j = 0; j < per_batch && i < to; j++, i++) {
            put_key(key, sizeof key, life, i);
            put_value(val, sizeof val, life, i);
            propose_put(n, key, val);
        }
        drive_ok(n, k);
    }
}

/* --------------------------------------------------------------- reads */

/* Returns 1 and copies the value if key is live, 0 if not. */
static int get(node *n, const char *key, char *val, size_t cap)
{
    mvcc_arena arena;
    mvcc_arena_init(&arena, 0);
    mvcc_range_req req;
    memset(&req, 0, sizeof req);
    req.key.data = (const uint8_t *)key;
    req.key.len = strlen(key);
    mvcc_range_resp resp;
    cord_error err;
    assert_int_equal(mvcc_range(storage_mvcc(n->st), &arena, &req, &resp, &err), MVCC_OK);
    int found = resp.kvs_len == 1;
    if (found) {
        assert_true(resp.kvs[0].value.len < cap);
        memcpy(val, resp.kvs[0].value.data, resp.kvs[0].value.len);
        val[resp.kvs[0].value.len] = '\0';
    }
    mvcc_arena_reset(&arena);
    return found;
}

/* Number of live keys. */
static int64_t key_count(node *n)
{
    mvcc_arena arena;
    mvcc_arena_init(&arena, 0);
    mvcc_range_req req;
    memset(&req, 0, sizeof req);
    req.key.data = (const uint8_t *)"\0";
    req.key.len = 1;
    req.range_end.data = (const uint8_t *)"\0";
    req.range_end.len = 1;
    req.count_only = true;
    mvcc_range_resp resp;
    cord_error err;
    assert_int_equal(mvcc_range(storage_mvcc(n->st), &arena, &req, &resp, &err), MVCC_OK);
    mvcc_arena_reset(&arena);
    return resp.count;
}

typedef struct summary {
    uint32_t hash;
    int64_t revision;
    uint64_t applied;
    int64_t keys;
} summary;

static void summarize(node *n, summary *s)
{
    cord_error err;
    uint64_t term;
    assert_int_equal(mvcc_hash(storage_mvcc(n->st), &s->hash, &s->revision, &err), MVCC_OK);
    storage_applied_get(n->st, &s->applied, &term);
    s->keys = key_count(n);
}

static void assert_summary_equal(const summary *a, const summary *b)
{
    assert_int_equal(a->hash, b->hash);
    assert_int_equal(a->revision, b->revision);
    assert_int_equal(a->applied, b->applied);
    assert_int_equal(a->keys, b->keys);
}

static void check_put(node *n, unsigned life, unsigned num)
{
    char key[64], want[128], got[256];
    put_key(key, sizeof key, life, num);
    put_value(want, sizeof want, life, num);
    if (!get(n, key, got, sizeof got)) {
        fail_msg("acknowledged key %s is missing", key);
    }
    assert_string_equal(got, want);
}

static void path_join(char *out, size_t cap, const char *a, const char *b)
{
    int len = snprintf(out, cap, "%s/%s", a, b);
    assert_true(len > 0 && (size_t)len < cap);
}

/* --------------------------------------------------------------- tests */

static void test_command_format(void **state)
{
    (void)state;
    uint8_t buf[64];
    storage_cmd c;
    size_t n = storage_cmd_encode_put(buf, "k", 1, "vv", 2);
    assert_int_equal(n, storage_cmd_put_len(1, 2));
    assert_int_equal(storage_cmd_decode(buf, n, &c), STORAGE_OK);
    assert_int_equal(c.op, STORAGE_CMD_PUT);
    assert_int_equal(c.key_len, 1);
    assert_memory_equal(c.key, "k", 1);
    assert_int_equal(c.value_len, 2);
    assert_memory_equal(c.value, "vv", 2);
    n = storage_cmd_encode_put(buf, "key", 3, NULL, 0); /* empty value is fine */
    assert_int_equal(storage_cmd_decode(buf, n, &c), STORAGE_OK);
    assert_int_equal(c.value_len, 0);
    n = storage_cmd_encode_delete(buf, "abc", 3);
    assert_int_equal(storage_cmd_decode(buf, n, &c), STORAGE_OK);
    assert_int_equal(c.op, STORAGE_CMD_DELETE);
    assert_memory_equal(c.key, "abc", 3);
    /* malformed: unknown op, empty key, key longer than the data */
    assert_int_equal(storage_cmd_decode((const uint8_t *)"X1", 2, &c), STORAGE_EBADCMD);
    assert_int_equal(storage_cmd_decode((const uint8_t *)"D", 1, &c), STORAGE_EBADCMD);
    n = storage_cmd_encode_put(buf, "k", 1, "v", 1);
    buf[1] = 9;
    assert_int_equal(storage_cmd_decode(buf, n, &c), STORAGE_EBADCMD);
    buf[1] = 0;
    assert_int_equal(storage_cmd_decode(buf, n, &c), STORAGE_EBADCMD);
}

static void test_fresh_layout(void **state)
{
    (void)state;
    node n;
    cord_error err;
    assert_int_equal(node_open(&n, tu_tmp, 0, 0, &err), STORAGE_OK);
    const raft_restore *rs = storage_restore(n.st);
    assert_null(rs->snapshot);
    assert_int_equal(rs->applied, 0);
    char p[2048], member[1100];
    path_join(member, sizeof member, tu_tmp, "member");
    assert_int_equal(tu_mode(member), 0700);
    path_join(p, sizeof p, member, "wal");
    assert_int_equal(tu_mode(p), 0700);
    path_join(p, sizeof p, member, "snap");
    assert_int_equal(tu_mode(p), 0700);
    path_join(p, sizeof p, member, "db");
    assert_int_equal(tu_mode(p), 0700);
    /* a second open of the same member is refused while the first holds it */
    storage *other = NULL;
    assert_int_equal(storage_open(tu_tmp, NULL, &other, &err), STORAGE_ELOCKED);
    assert_null(other);
    node_close(&n);
}

static void test_restart_state_equal(void **state)
{
    (void)state;
    node n;
    cord_error err;
    acks k = {.fd = -1};
    assert_int_equal(node_open(&n, tu_tmp, 0, 0, &err), STORAGE_OK);
    node_elect(&n, &k);
    put_range(&n, &k, 0, 0, 60, 5);
    /* deletes, an overwrite, a no-op delete and an undecodable entry */
    char key[64];
    for (unsigned i = 0; i < 60; i += 10) {
        put_key(key, sizeof key, 0, i);
        propose_delete(&n, key);
    }
    propose_delete(&n, "no-such-key");
    propose_put(&n, "L0-00001", "overwritten");
    assert_int_equal(raft_propose(n.r, (const uint8_t *)"?junk", 5), RAFT_OK);
    drive_ok(&n, &k);
    assert_int_equal(k.puts, 61);
    assert_int_equal(k.deletes, 7);
    summary before;
    summarize(&n, &before);
    assert_int_equal(before.keys, 54);
    assert_int_equal(before.revision, 1 + 61 + 6);
    raft_status rs;
    raft_get_status(n.r, &rs);
    assert_int_equal(before.applied, rs.commit);
    node_close(&n);

    /* restart: the same state, the log back in the core */
    assert_int_equal(node_open(&n, tu_tmp, 0, 0, &err), STORAGE_OK);
    summary after;
    summarize(&n, &after);
    assert_summary_equal(&before, &after);
    raft_get_status(n.r, &rs);
    assert_int_equal(rs.last_index, before.applied);
    assert_int_equal(rs.applied, before.applied);
    char val[256];
    assert_true(get(&n, "L0-00001", val, sizeof val));
    assert_string_equal(val, "overwritten");
    assert_false(get(&n, "L0-00010", val, sizeof val));
    check_put(&n, 0, 59);
    /* it goes on working */
    acks k2 = {.fd = -1};
    node_elect(&n, &k2);
    put_range(&n, &k2, 1, 0, 20, 4);
    assert_int_equal(k2.puts, 20);
    assert_int_equal(key_count(&n), 74);
    node_close(&n);
}

/* A restart keeps the data of no more applied entries than restore_applied_bytes: the older
 * stay on disk (index and term kept, configurations whole), and read back the same. */
static void test_restart_leaves_applied_entries_on_disk(void **state)
{
    (void)state;
    node n;
    cord_error err;
    acks k = {.fd = -1};
    assert_int_equal(node_open(&n, tu_tmp, 0, 0, &err), STORAGE_OK);
    node_elect(&n, &k);
    put_range(&n, &k, 0, 0, 200, 7);
    raft_status rs;
    raft_get_status(n.r, &rs);
    uint64_t last = rs.last_index;
    node_close(&n);

    /* the whole log, for reference */
    storage *st = NULL;
    storage_options o;
    memset(&o, 0, sizeof o);
    o.mvcc.quota_bytes = 64ull << 20;
    o.mvcc.map_size_bytes = 256ull << 20;
    assert_int_equal(storage_open(tu_tmp, &o, &st, &err), STORAGE_OK);
    const raft_restore *all = storage_restore(st);
    assert_int_equal(all->unloaded_through, 0);
    assert_int_equal(all->n_entries, last);
    assert_int_equal(all->applied, last);
    raft_entry *ref = calloc(all->n_entries, sizeof *ref);
    assert_non_null(ref);
    for (uint32_t i = 0; i < all->n_entries; i++) {
        ref[i] = all->entries[i];
        ref[i].data = NULL;
        if (all->entries[i].len) {
            uint8_t *d = malloc(all->entries[i].len);
            assert_non_null(d);
            memcpy(d, all->entries[i].data, all->entries[i].len);
            ref[i].data = d;
        }
    }
    storage_close(st);

    o.restore_applied_bytes = 1024;
    assert_int_equal(storage_open(tu_tmp, &o, &st, &err), STORAGE_OK);
    const raft_restore *part = storage_restore(st);
    assert_int_equal(part->n_entries, last);
    assert_true(part->unloaded_through > 0);
    assert_true(part->unloaded_through < last);
    uint64_t held = 0;
    for (uint32_t i = 0; i < part->n_entries; i++) {
        const raft_entry *e = &part->entries[i];
        assert_int_equal(e->index, ref[i].index);
        assert_int_equal(e->term, ref[i].term);
        assert_int_equal(e->type, ref[i].type);
        if (e->index > part->unloaded_through || e->type == RAFT_ENTRY_CONF) {
            assert_int_equal(e->len, ref[i].len);
            if (e->len) {
                assert_memory_equal(e->data, ref[i].data, e->len);
            }
            if (e->type != RAFT_ENTRY_CONF) {
                held += e->len;
            }
        } else {
            assert_null(e->data);
            assert_int_equal(e->len, 0);
        }
    }
    assert_true(held <= 1024);
    assert_true(held > 1024 - 2 * (64 + VALUE_PAD)); /* the budget is used, give or take one */
    assert_int_equal(part->entries[0].type, RAFT_ENTRY_CONF); /* the bootstrap entry, whole */

    /* the core starts on it; what stayed on disk reads back the same */
    raft_config cfg;
    raft_config_default(&cfg);
    cfg.id = 1;
    cfg.seed = 42;
    char why[256] = "";
    raft *r = raft_new(&cfg, NULL, part, why, sizeof why);
    assert_non_null(r);
    raft_get_status(r, &rs);
    assert_int_equal(rs.first_index, part->unloaded_through + 1);
    assert_int_equal(rs.last_index, last);
    assert_int_equal(rs.applied, last);
    assert_int_equal(raft_log_term(r, 2), ref[1].term);
    raft_entry *back = NULL;
    uint32_t nb = 0;
    assert_int_equal(storage_read_entries(st, 2, 1u << 20, &back, &nb, &err), STORAGE_OK);
    assert_true(nb >= part->unloaded_through - 1);
    for (uint32_t i = 0; i < nb; i++) {
        assert_int_equal(back[i].index, ref[i + 1].index);
        assert_int_equal(back[i].term, ref[i + 1].term);
        assert_int_equal(back[i].len, ref[i + 1].len);
        if (back[i].len) {
            assert_memory_equal(back[i].data, ref[i + 1].data, back[i].len);
        }
    }
    free(back);
    raft_free(r);
    storage_close(st);
    for (uint32_t i = 0; i < last; i++) {
        free((void *)ref[i].data);
    }
    free(ref);

    /* and the member goes on from it */
    n.opts.restore_applied_bytes = 0;
    assert_int_equal(node_open(&n, tu_tmp, 0, 0, &err), STORAGE_OK);
    acks k2 = {.fd = -1};
    node_elect(&n, &k2);
    put_range(&n, &k2, 1, 0, 10, 3);
    check_put(&n, 0, 199);
    node_close(&n);
}

/* The leader's side of a transfer: the snapshot file at `index` begins with its magic. */
static void assert_snapshot_head(node *n, uint64_t index)
{
    uint8_t head[16];
    size_t got = 0;
    cord_error err;
    assert_int_equal(storage_read_snapshot_chunk(n->st, index, 0, sizeof head, head, &got, &err),
                     STORAGE_OK);
    assert_int_equal(got, sizeof head);
    assert_memory_equal(head, "cordsnap", 8);
}

/* Only the newest snapshot file stays. A transfer that has the replaced one open reads on;
 * asking for it afresh finds nothing (the leader then starts over with the newest). */
static void test_one_snapshot_file(void **state)
{
    (void)state;
    node n;
    cord_error err;
    acks k = {.fd = -1};
    assert_int_equal(node_open(&n, tu_tmp, 10, WAL_SEGMENT_BYTES_MIN, &err), STORAGE_OK);
    node_elect(&n, &k);
    put_range(&n, &k, 0, 0, 40, 3);
    uint64_t old_index, s_index, s_term;
    storage_snapshot_get(n.st, &old_index, &s_term);
    assert_true(old_index > 20);
    char snapdir[1200];
    snprintf(snapdir, sizeof snapdir, "%s/member/snap", tu_tmp);
    assert_int_equal(tu_count_suffix(snapdir, ".snap"), 1);
    assert_snapshot_head(&n, old_index);

    put_range(&n, &k, 0, 40, 80, 3);
    storage_snapshot_get(n.st, &s_index, &s_term);
    assert_true(s_index > old_index);
    assert_int_equal(tu_count_suffix(snapdir, ".snap"), 1);
    /* the open transfer goes on */
    uint8_t more[8];
    size_t got = 0;
    assert_int_equal(storage_read_snapshot_chunk(n.st, old_index, 8, 8, more, &got, &err),
                     STORAGE_OK);
    assert_int_equal(got, 8);
    /* the newest is there; once the reader moved to it, the old one is gone */
    assert_snapshot_head(&n, s_index);
    assert_int_equal(storage_read_snapshot_chunk(n.st, old_index, 0, 8, more, &got, &err),
                     STORAGE_ENOENT);
    node_close(&n);
}

static void test_snapshots_and_restart(void **state)
{
    (void)state;
    node n;
    cord_error err;
    acks k = {.fd = -1};
    assert_int_equal(node_open(&n, tu_tmp, 10, WAL_SEGMENT_BYTES_MIN, &err), STORAGE_OK);
    node_elect(&n, &k);
    put_range(&n, &k, 0, 0, 300, 3);
    uint64_t s_index, s_term;
    storage_snapshot_get(n.st, &s_index, &s_term);
    assert_true(s_index > 250);
    char member[1100], snapdir[1200], waldir[1200];
    path_join(member, sizeof member, tu_tmp, "member");
    path_join(snapdir, sizeof snapdir, member, "snap");
    path_join(waldir, sizeof waldir, member, "wal");
    assert_int_equal(tu_count_suffix(snapdir, ".snap"), STORAGE_SNAP_KEEP_DEFAULT);
    assert_int_equal(tu_count_suffix(snapdir, ".tmp"), 0);
    /* covered segments were released: 300 entries of ~90 bytes need ~8 */
    assert_true(tu_count_suffix(waldir, ".wal") <= 4);
    raft_conf conf;
    storage_conf_get(n.st, &conf);
    assert_int_equal(conf.n_voters, 1);
    assert_int_equal(conf.voters[0], 1);

    assert_snapshot_head(&n, s_index);
    uint8_t head[8];
    size_t got = 0;
    assert_int_equal(storage_read_snapshot_chunk(n.st, s_index + 1000, 0, 8, head, &got, &err),
                     STORAGE_ENOENT);

    /* some more after the last snapshot, so the restart needs snapshot + WAL tail */
    put_range(&n, &k, 0, 300, 305, 5);
    storage_snapshot_get(n.st, &s_index, &s_term);
    summary before;
    summarize(&n, &before);
    assert_true(before.applied > s_index);
    assert_int_equal(before.revision, 1 + 305);
    node_close(&n);

    assert_int_equal(node_open(&n, tu_tmp, 10, WAL_SEGMENT_BYTES_MIN, &err), STORAGE_OK);
    /* storage_restore was released by node_open: look at the core instead */
    raft_status rs;
    raft_get_status(n.r, &rs);
    assert_int_equal(rs.snapshot_index, s_index);
    assert_int_equal(rs.snapshot_term, s_term);
    assert_int_equal(rs.last_index, before.applied);
    summary after;
    summarize(&n, &after);
    assert_summary_equal(&before, &after);
    for (unsigned i = 0; i < 305; i += 17) {
        check_put(&n, 0, i);
    }
    check_put(&n, 0, 304);
    acks k2 = {.fd = -1};
    node_elect(&n, &k2);
    put_range(&n, &k2, 1, 0, 40, 4);
    assert_int_equal(k2.puts, 40);
    assert_int_equal(key_count(&n), 345);
    node_close(&n);
}

static void copy_file(const char *from, const char *to)
{
    size_t len = 0;
    uint8_t *buf = tu_read_file(from, &len);
    tu_write_file(to, buf, len);
    free(buf);
}

/* A store whose applied index is behind the snapshot (as after a crash in
 * the middle of installing one) is restored from the snapshot file. */
static void test_store_behind_snapshot(void **state)
{
    (void)state;
    node n;
    cord_error err;
    acks k = {.fd = -1};
    char member[1100], db[1200], data[1300], lock[1300], saved[1300];
    path_join(member, sizeof member, tu_tmp, "member");
    path_join(db, sizeof db, member, "db");
    path_join(data, sizeof data, db, "data.mdb");
    path_join(lock, sizeof lock, db, "lock.mdb");
    path_join(saved, sizeof saved, tu_tmp, "old-data.mdb");

    assert_int_equal(node_open(&n, tu_tmp, 20, WAL_SEGMENT_BYTES_MIN, &err), STORAGE_OK);
    node_elect(&n, &k);
    put_range(&n, &k, 0, 0, 5, 5);
    node_close(&n);
    copy_file(data, saved);

    assert_int_equal(node_open(&n, tu_tmp, 20, WAL_SEGMENT_BYTES_MIN, &err), STORAGE_OK);
    node_elect(&n, &k);
    put_range(&n, &k, 0, 5, 100, 5);
    uint64_t s_index, s_term;
    storage_snapshot_get(n.st, &s_index, &s_term);
    assert_true(s_index > 20);
    summary before;
    summarize(&n, &before);
    node_close(&n);

    copy_file(saved, data);
    unlink(lock);
    assert_int_equal(node_open(&n, tu_tmp, 20, WAL_SEGMENT_BYTES_MIN, &err), STORAGE_OK);
    summary after;
    summarize(&n, &after);
    assert_summary_equal(&before, &after);
    check_put(&n, 0, 99);
    node_close(&n);
}

/* A store committed without fsync is trusted within the boot that wrote it (a killed
 * process loses nothing); a marker naming another boot (a system crash) makes the member
 * rebuild it from the snapshot and the WAL, whatever state the file was left in. */
static void unsynced_store_case(uint64_t snapshot_entries)
{
    node n;
    cord_error err;
    acks k = {.fd = -1};
    char member[1100], db[1200], data[1300], marker[1300];
    path_join(member, sizeof member, tu_tmp, "member");
    path_join(db, sizeof db, member, "db");
    path_join(data, sizeof data, db, "data.mdb");
    path_join(marker, sizeof marker, member, "db.unsynced");
    open_no_sync = true;

    assert_int_equal(node_open(&n, tu_tmp, snapshot_entries, WAL_SEGMENT_BYTES_MIN, &err),
                     STORAGE_OK);
    assert_false(storage_store_rebuilt(n.st));
    assert_int_equal(access(marker, F_OK), 0); /* written before the first commit */
    node_elect(&n, &k);
    put_range(&n, &k, 0, 0, 100, 5);
    summary before;
    summarize(&n, &before);
    node_close(&n);
    assert_int_not_equal(access(marker, F_OK), 0); /* a clean close synced the store */

    /* same boot (a killed process): the store is kept as it is */
    assert_int_equal(node_open(&n, tu_tmp, snapshot_entries, WAL_SEGMENT_BYTES_MIN, &err),
                     STORAGE_OK);
    assert_false(storage_store_rebuilt(n.st));
    summary after;
    summarize(&n, &after);
    assert_summary_equal(&before, &after);
    node_close(&n);

    /* another boot: the file may be torn (here: garbage), it is rebuilt */
    tu_write_file(marker, (const uint8_t *)"another-boot-id", 15);
    size_t len = 0;
    uint8_t *buf = tu_read_file(data, &len);
    assert_true(len > 8192);
    memset(buf + 4096, 0xA5, len - 4096);
    tu_write_file(data, buf, len);
    free(buf);
    assert_int_equal(node_open(&n, tu_tmp, snapshot_entries, WAL_SEGMENT_BYTES_MIN, &err),
                     STORAGE_OK);
    assert_true(storage_store_rebuilt(n.st));
    acks k2 = {.fd = -1};
    node_elect(&n, &k2); /* the core re-delivers the log after the snapshot */
    summary rebuilt;
    summarize(&n, &rebuilt);
    assert_int_equal(rebuilt.keys, before.keys);
    assert_int_equal(rebuilt.revision, before.revision);
    for (unsigned i = 0; i < 100; i += 7) {
        check_put(&n, 0, i);
    }
    check_put(&n, 0, 99);
    put_range(&n, &k2, 1, 0, 10, 5);
    assert_int_equal(key_count(&n), 110);
    node_close(&n);
    open_no_sync = false;
}

static void test_unsynced_store_with_snapshot(void **state)
{
    (void)state;
    unsynced_store_case(20);
}

static void test_unsynced_store_log_only(void **state)
{
    (void)state;
    unsynced_store_case(0);
}

static void test_corrupt_wal_is_reported(void **state)
{
    (void)state;
    node n;
    cord_error err;
    acks k = {.fd = -1};
    assert_int_equal(node_open(&n, tu_tmp, 0, WAL_SEGMENT_BYTES_MIN, &err), STORAGE_OK);
    node_elect(&n, &k);
    put_range(&n, &k, 0, 0, 150, 5);
    node_close(&n);

    char waldir[1200], seg[2048];
    path_join(seg, sizeof seg, tu_tmp, "member");
    path_join(waldir, sizeof waldir, seg, "wal");
    assert_true(tu_count_suffix(waldir, ".wal") >= 3);
    assert_int_equal(tu_nth_with_suffix(waldir, ".wal", 0, seg, sizeof seg), 1);
    struct stat sb;
    assert_int_equal(stat(seg, &sb), 0);
    tu_flip_bit(seg, (uint64_t)sb.st_size / 2, 3);

    storage *st = NULL;
    cord_error_clear(&err);
    int rc = storage_open(tu_tmp, NULL, &st, &err);
    assert_int_equal(rc, STORAGE_ECORRUPT);
    assert_int_equal(err.code, STORAGE_ECORRUPT);
    assert_null(st);
    const char *base = strrchr(seg, '/') + 1;
    if (strstr(err.msg, base) == NULL) {
        fail_msg("error does not name %s: %s", base, err.msg);
    }
}

/* A WAL write that fails (ENOSPC at the fsync) stops the member: the batch
 * is not applied, nothing after it is acknowledged, every later call says
 * STORAGE_EFAILED; a restart finds every acknowledged put. */
static void test_wal_failure_stops_member(void **state)
{
    (void)state;
    node n;
    cord_error err;
    acks k = {.fd = -1};
    assert_int_equal(node_open(&n, tu_tmp, 0, 0, &err), STORAGE_OK);
    node_elect(&n, &k);
    put_range(&n, &k, 0, 0, 30, 3);
    uint64_t acked = k.puts;
    assert_int_equal(failpoint_configure("wal-before-fsync=error(ENOSPC)", &err), FAILPOINT_OK);
    char key[64], val[128];
    put_key(key, sizeof key, 0, 30);
    put_value(val, sizeof val, 0, 30);
    propose_put(&n, key, val);
    int rc = node_drive(&n, &k, &err);
    assert_int_equal(failpoint_configure(NULL, NULL), FAILPOINT_OK);
    assert_int_equal(rc, STORAGE_EIO);
    assert_int_equal(err.sys_errno, ENOSPC);
    assert_true(storage_failed(n.st));
    assert_int_equal(k.puts, acked);
    struct raft_ready empty;
    memset(&empty, 0, sizeof empty);
    assert_int_equal(storage_handle_ready(n.st, &empty, NULL, NULL, &err), STORAGE_EFAILED);
    assert_non_null(strstr(err.msg, "fdatasync"));
    node_close(&n);

    assert_int_equal(node_open(&n, tu_tmp, 0, 0, &err), STORAGE_OK);
    for (unsigned i = 0; i < 30; i++) {
        check_put(&n, 0, i);
    }
    summary s;
    summarize(&n, &s);
    assert_int_equal(s.revision, 1 + 30);
    node_close(&n);
}

/* A snapshot whose file cannot be written (ENOSPC) is not taken, and that is all: the
 * storage is not failed, nothing is left in the snapshot directory, writes go on, the next
 * snapshot is taken, and a restart finds every put. */
static void test_snapshot_write_failure_is_not_fatal(void **state)
{
    (void)state;
    node n;
    cord_error err;
    acks k = {.fd = -1};
    char member[1100], snapdir[1200];
    path_join(member, sizeof member, tu_tmp, "member");
    path_join(snapdir, sizeof snapdir, member, "snap");
    assert_int_equal(node_open(&n, tu_tmp, 0, 0, &err), STORAGE_OK);
    node_elect(&n, &k);
    put_range(&n, &k, 0, 0, 30, 3);
    assert_int_equal(failpoint_configure("snap-before-write=error(ENOSPC)", &err), FAILPOINT_OK);
    int rc = storage_take_snapshot(n.st, n.r, &err);
    assert_int_equal(failpoint_configure(NULL, NULL), FAILPOINT_OK);
    assert_int_equal(rc, STORAGE_EIO);
    assert_int_equal(err.sys_errno, ENOSPC);
    assert_false(storage_failed(n.st));
    uint64_t s_index, s_term;
    storage_snapshot_get(n.st, &s_index, &s_term);
    assert_int_equal(s_index, 0);
    assert_int_equal(tu_count_suffix(snapdir, ".snap"), 0);
    assert_int_equal(tu_count_suffix(snapdir, ".tmp"), 0);
    put_range(&n, &k, 0, 30, 60, 3);
    assert_int_equal(storage_take_snapshot(n.st, n.r, &err), STORAGE_OK);
    storage_snapshot_get(n.st, &s_index, &s_term);
    assert_true(s_index > 30);
    assert_int_equal(tu_count_suffix(snapdir, ".snap"), 1);
    node_close(&n);

    assert_int_equal(node_open(&n, tu_tmp, 0, 0, &err), STORAGE_OK);
    for (unsigned i = 0; i < 60; i++) {
        check_put(&n, 0, i);
    }
    node_close(&n);
}

/* ------------------------------------------- snapshot transfer (3 members) */

#define CLUSTER_N     3
#define CLUSTER_QUEUE 65536

typedef struct qmsg {
    raft_msg m;
    raft_entry *ents;
    uint8_t *data; /* entries' data, or the snapshot chunk */
} qmsg;

typedef struct cluster {
    node nodes[CLUSTER_N];
    char dirs[CLUSTER_N][1100];
    bool cut[CLUSTER_N];      /* partitioned away: messages to and from it are dropped */
    bool may_fail[CLUSTER_N]; /* a storage failure is expected: the member is then cut */
    cord_error fail_err[CLUSTER_N];
    qmsg *q;
    size_t nq;
    uint64_t chunks_sent;
} cluster;

static void cluster_send(void *ctx, node *from, const raft_msg *m)
{
    cluster *c = ctx;
    (void)from;
    if (c->cut[m->from - 1] || c->cut[m->to - 1]) {
        return;
    }
    assert_true(c->nq < CLUSTER_QUEUE);
    qmsg *q = &c->q[c->nq++];
    memset(q, 0, sizeof(*q));
    q->m = *m;
    if (m->type == RAFT_MSG_SNAPSHOT) {
        /* the transport fills the chunk from the leader's snapshot file */
        q->data = malloc(m->len ? m->len : 1);
        assert_non_null(q->data);
        size_t got = 0;
        cord_error err;
        int rc = storage_read_snapshot_chunk(c->nodes[m->from - 1].st, m->log_index, m->offset,
                                             m->len, q->data, &got, &err);
        if (rc != STORAGE_OK) {
            fail_msg("read chunk: %s", err.msg);
        }
        assert_int_equal(got, m->len);
        q->m.data = q->data;
        c->chunks_sent++;
        return;
    }
    if (m->n_entries > 0) {
        size_t total = 0;
        for (uint32_t i = 0; i < m->n_entries; i++) {
            total += m->entries[i].len;
        }
        q->ents = calloc(m->n_entries, sizeof(raft_entry));
        q->data = malloc(total ? total : 1);
        assert_non_null(q->ents);
        assert_non_null(q->data);
        size_t off = 0;
        for (uint32_t i = 0; i < m->n_entries; i++) {
            q->ents[i] = m->entries[i];
            if (m->entries[i].len > 0) {
                memcpy(q->data + off, m->entries[i].data, m->entries[i].len);
                q->ents[i].data = q->data + off;
                off += m->entries[i].len;
            }
        }
        q->m.entries = q->ents;
    }
}

static void cluster_drive(cluster *c, int i)
{
    if (c->cut[i] && c->may_fail[i] && storage_failed(c->nodes[i].st)) {
        return;
    }
    if (!c->may_fail[i]) {
        drive_ok(&c->nodes[i], NULL);
        return;
    }
    if (node_drive(&c->nodes[i], NULL, &c->fail_err[i]) != STORAGE_OK) {
        c->cut[i] = true; /* a failed member stops: it neither sends nor receives */
    }
}

static void cluster_open(cluster *c, uint64_t snapshot_entries)
{
    cord_error err;
    for (int i = 0; i < CLUSTER_N; i++) {
        snprintf(c->dirs[i], sizeof c->dirs[i], "%s/m%d", tu_tmp, i + 1);
        int rc = node_open_member(&c->nodes[i], c->dirs[i], (raft_id)(i + 1), CLUSTER_N,
                                  snapshot_entries, WAL_SEGMENT_BYTES_MIN, &err);
        if (rc != STORAGE_OK) {
            fail_msg("open member %d: %s", i + 1, err.msg);
        }
    }
}

/* Delivers everything queued (and what that produces) until quiet. */
static void cluster_settle(cluster *c)
{
    drive_send = cluster_send;
    drive_send_ctx = c;
    for (int i = 0; i < CLUSTER_N; i++) {
        cluster_drive(c, i);
    }
    for (int round = 0; round < 10000 && c->nq > 0; round++) {
        size_t n = c->nq;
        qmsg *batch = malloc(n * sizeof(qmsg));
        assert_non_null(batch);
        memcpy(batch, c->q, n * sizeof(qmsg));
        c->nq = 0;
        for (size_t i = 0; i < n; i++) {
            raft_msg *m = &batch[i].m;
            if (!c->cut[m->from - 1] && !c->cut[m->to - 1]) {
                (void)raft_step(c->nodes[m->to - 1].r, m);
                cluster_drive(c, (int)m->to - 1);
            }
            free(batch[i].ents);
            free(batch[i].data);
        }
        free(batch);
    }
    assert_int_equal(c->nq, 0);
    drive_send = NULL;
    drive_send_ctx = NULL;
}

static void cluster_tick(cluster *c)
{
    for (int i = 0; i < CLUSTER_N; i++) {
        if (!(c->may_fail[i] && storage_failed(c->nodes[i].st))) {
            raft_tick(c->nodes[i].r);
        }
    }
    cluster_settle(c);
}

static uint64_t applied_of(node *n)
{
    uint64_t a, t;
    storage_applied_get(n->st, &a, &t);
    return a;
}

/* interrupt: the follower's install fails between committing the received
 * file and swapping its store (as a crash there would leave it); it then
 * restarts, and start-up must finish the install. */
static void transfer_scenario(bool interrupt)
{
    cluster *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->q = calloc(CLUSTER_QUEUE, sizeof(qmsg));
    assert_non_null(c->q);
    cluster_open(c, 10);
    node *a = &c->nodes[0], *m3 = &c->nodes[2];

    raft_campaign(a->r);
    cluster_settle(c);
    for (int t = 0; t < 100 && raft_leader(a->r) != 1; t++) {
        cluster_tick(c);
    }
    assert_int_equal(raft_leader(a->r), 1);

    char key[64], val[128];
    for (unsigned i = 0; i < 20; i++) {
        put_key(key, sizeof key, 0, i);
        put_value(val, sizeof val, 0, i);
        propose_put(a, key, val);
        cluster_settle(c);
    }
    cluster_tick(c);
    assert_int_equal(applied_of(m3), applied_of(a));

    /* member 3 falls behind, the leader compacts past it */
    c->cut[2] = true;
    for (unsigned i = 20; i < 200; i++) {
        put_key(key, sizeof key, 0, i);
        put_value(val, sizeof val, 0, i);
        propose_put(a, key, val);
        cluster_settle(c);
    }
    cluster_tick(c);
    uint64_t s_index, s_term;
    storage_snapshot_get(a->st, &s_index, &s_term);
    assert_true(s_index > applied_of(m3) + 10);
    storage_snapshot_made made = storage_last_snapshot_made(a->st);
    assert_int_equal(made.index, s_index);
    assert_true(made.data_bytes > 0);
    if (image_free_percent == 100) {
        assert_false(made.compacted);
    }

    /* healed: it can only catch up through a snapshot, sent in chunks */
    c->cut[2] = false;
    cord_error err;
    if (interrupt) {
        c->may_fail[2] = true;
        assert_int_equal(failpoint_configure("mvcc-before-swap=1*error", &err), FAILPOINT_OK);
        for (int t = 0; t < 200 && !storage_failed(m3->st); t++) {
            cluster_tick(c);
        }
        assert_int_equal(failpoint_configure(NULL, &err), FAILPOINT_OK);
        assert_true(storage_failed(m3->st));
        if (strstr(c->fail_err[2].msg, "mvcc-before-swap") == NULL) {
            fail_msg("unexpected failure: %s", c->fail_err[2].msg);
        }
        /* a failed storage refuses everything after */
        struct raft_ready empty;
        memset(&empty, 0, sizeof empty);
        assert_int_equal(storage_handle_ready(m3->st, &empty, NULL, NULL, &err), STORAGE_EFAILED);
        assert_int_equal(storage_take_snapshot(m3->st, m3->r, &err), STORAGE_EFAILED);
        node_close(m3);
        /* the received file is on disk; the store and the WAL never heard of it */
        assert_int_equal(
            node_open_member(m3, c->dirs[2], 3, CLUSTER_N, 10, WAL_SEGMENT_BYTES_MIN, &err),
            STORAGE_OK);
        uint64_t snap_i, snap_t;
        storage_snapshot_get(m3->st, &snap_i, &snap_t);
        assert_true(snap_i >= s_index);
        assert_int_equal(applied_of(m3), snap_i);
        raft_status rs3;
        raft_get_status(m3->r, &rs3);
        assert_int_equal(rs3.snapshot_index, snap_i);
        assert_int_equal(rs3.last_index, snap_i);
        c->may_fail[2] = false;
        c->cut[2] = false;
    }
    for (int t = 0; t < 200 && applied_of(m3) != applied_of(a); t++) {
        cluster_tick(c);
    }
    assert_int_equal(applied_of(m3), applied_of(a));
    assert_true(c->chunks_sent > 1);
    uint64_t m3_snap, m3_term;
    storage_snapshot_get(m3->st, &m3_snap, &m3_term);
    assert_true(m3_snap >= s_index);
    summary sa, sc;
    summarize(a, &sa);
    summarize(m3, &sc);
    assert_int_equal(sa.hash, sc.hash);
    assert_int_equal(sa.revision, sc.revision);
    assert_int_equal(sc.keys, 200);

    /* member 3 restarts from its installed snapshot */
    node_close(m3);
    assert_int_equal(
        node_open_member(m3, c->dirs[2], 3, CLUSTER_N, 10, WAL_SEGMENT_BYTES_MIN, &err),
        STORAGE_OK);
    summarize(m3, &sc);
    assert_int_equal(sa.hash, sc.hash);
    raft_status rs;
    raft_get_status(m3->r, &rs);
    assert_true(rs.snapshot_index >= s_index);
    check_put(m3, 0, 199);
    /* and keeps up with new writes */
    for (unsigned i = 200; i < 210; i++) {
        put_key(key, sizeof key, 0, i);
        put_value(val, sizeof val, 0, i);
        propose_put(a, key, val);
        cluster_settle(c);
    }
    for (int t = 0; t < 50 && applied_of(m3) != applied_of(a); t++) {
        cluster_tick(c);
    }
    summarize(a, &sa);
    summarize(m3, &sc);
    assert_int_equal(sa.hash, sc.hash);
    assert_int_equal(sc.keys, 210);

    for (int i = 0; i < CLUSTER_N; i++) {
        node_close(&c->nodes[i]);
    }
    for (size_t i = 0; i < c->nq; i++) {
        free(c->q[i].ents);
        free(c->q[i].data);
    }
    free(c->q);
    free(c);
}

static void test_snapshot_transfer_and_install(void **state)
{
    (void)state;
    transfer_scenario(false);
}

/* The same with snapshots that are the store's file as it is (mvcc_image), which is what
 * a member's large stores use: restart from one, and install one on another member. */
static void test_snapshots_of_the_file_as_it_is(void **state)
{
    image_free_percent = 100;
    test_snapshots_and_restart(state); /* in tu_tmp/member */
    transfer_scenario(false);          /* in tu_tmp/m1, m2, m3 */
    image_free_percent = 0;
}

static void test_snapshot_install_interrupted(void **state)
{
    (void)state;
    transfer_scenario(true);
}

/* -------------------------------------------------------- crash points */

#define CHILD_ROUNDS     120
#define CHILD_PER_BATCH  3
#define CHILD_SNAP_EVERY 16
#define CHILD_SEGMENT    (16 * 1024)

/* Child: one life: elect, then write until done (or a failpoint kills it). */
static int child_main(const char *dir, unsigned life, int fd)
{
    node n;
    cord_error err;
    if (node_open(&n, dir, CHILD_SNAP_EVERY, CHILD_SEGMENT, &err) != STORAGE_OK) {
        fprintf(stderr, "child: open: %s\n", err.msg);
        return 3;
    }
    acks k = {.fd = fd};
    node_elect(&n, &k);
    put_range(&n, &k, life, 0, CHILD_ROUNDS * CHILD_PER_BATCH, CHILD_PER_BATCH);
    node_close(&n);
    return 0;
}

typedef struct history {
    /* acked[life][num] */
    uint8_t acked[MAX_LIVES][MAX_PUTS];
    unsigned max_acked[MAX_LIVES]; /* highest num + 1 */
} history;

static int run_child(const char *spec, unsigned life, history *h)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        char l[16], f[16];
        snprintf(l, sizeof l, "%u", life);
        snprintf(f, sizeof f, "%d", pfd[1]);
        setenv(FAILPOINT_ENV, spec, 1);
        execl("/proc/self/exe", "storage_test", "--child", tu_tmp, l, f, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    ack_msg m;
    while (read(pfd[0], &m, sizeof m) == (ssize_t)sizeof m) {
        assert_true(m.life < MAX_LIVES && m.num < MAX_PUTS);
        if (m.life == life) {
            h->acked[m.life][m.num] = 1;
            if (m.num + 1 > h->max_acked[m.life]) {
                h->max_acked[m.life] = m.num + 1;
            }
        }
    }
    close(pfd[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Every acknowledged put present with its value; each life's puts a prefix;
 * revision = 1 + puts applied (each put is one revision: nothing twice). */
static void check_history(node *n, const history *h, unsigned lives)
{
    int64_t total = 0;
    char key[64], val[256];
    for (unsigned life = 0; life < lives; life++) {
        unsigned present = 0;
        while (present < MAX_PUTS) {
            put_key(key, sizeof key, life, present);
            if (!get(n, key, val, sizeof val)) {
                break;
            }
            present++;
        }
        for (unsigned i = present; i < present + 64 && i < MAX_PUTS; i++) {
            put_key(key, sizeof key, life, i);
            if (get(n, key, val, sizeof val)) {
                fail_msg("life %u: key %s present after a gap at %u", life, key, present);
            }
        }
        if (present < h->max_acked[life]) {
            fail_msg("life %u: %u puts acknowledged, only %u present", life, h->max_acked[life],
                     present);
        }
        for (unsigned i = 0; i < present; i++) {
            check_put(n, life, i);
        }
        total += present;
    }
    summary s;
    summarize(n, &s);
    assert_int_equal(s.keys, total);
    if (s.revision != 1 + total) {
        fail_msg("revision %" PRId64 " for %" PRId64 " puts: an entry was applied twice",
                 s.revision, total);
    }
}

static void verify_after_crash(const history *h, unsigned lives)
{
    node n;
    cord_error err;
    int rc = node_open(&n, tu_tmp, CHILD_SNAP_EVERY, CHILD_SEGMENT, &err);
    if (rc != STORAGE_OK) {
        fail_msg("reopen after crash: %s: %s", storage_status_name(rc), err.msg);
    }
    check_history(&n, h, lives);
    /* the core re-delivers the committed tail: apply it, exactly once */
    acks k = {.fd = -1};
    node_elect(&n, &k);
    check_history(&n, h, lives);
    raft_status rs;
    raft_get_status(n.r, &rs);
    uint64_t applied, term;
    storage_applied_get(n.st, &applied, &term);
    assert_int_equal(applied, rs.applied);
    assert_int_equal(applied, rs.commit);
    assert_int_equal(applied, rs.last_index);
    node_close(&n);
    char member[1100], snapdir[1200];
    path_join(member, sizeof member, tu_tmp, "member");
    path_join(snapdir, sizeof snapdir, member, "snap");
    assert_int_equal(tu_count_suffix(snapdir, ".tmp"), 0);
}

/* Three lives in one directory, each killed by `name` at its Nth hit. */
static void crash_scenario(const char *name, unsigned first_n, unsigned step)
{
    history *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    for (unsigned life = 0; life < MAX_LIVES; life++) {
        char spec[128];
        snprintf(spec, sizeof spec, "%s=%u*crash", name, first_n + life * step);
        int code = run_child(spec, life, h);
        if (code != FAILPOINT_CRASH_EXIT_CODE) {
            fail_msg("%s: child exited %d instead of crashing", spec, code);
        }
        /* the crash came in the middle of the run, after some acknowledgements */
        if (h->max_acked[life] == 0 || h->max_acked[life] >= CHILD_ROUNDS * CHILD_PER_BATCH) {
            fail_msg("%s: %u puts acknowledged: the crash was not mid-run", spec,
                     h->max_acked[life]);
        }
        if (getenv("STORAGE_TEST_VERBOSE") != NULL) {
            fprintf(stderr, "%s: %u puts acknowledged\n", spec, h->max_acked[life]);
        }
        verify_after_crash(h, life + 1);
    }
    free(h);
}

static void test_crash_wal_before_fsync(void **state)
{
    (void)state;
    crash_scenario("wal-before-fsync", 57, 31);
}

static void test_crash_wal_after_fsync(void **state)
{
    (void)state;
    crash_scenario("wal-after-fsync", 61, 29);
}

static void test_crash_wal_torn_write(void **state)
{
    (void)state;
    crash_scenario("wal-torn-write", 53, 37);
}

static void test_crash_mvcc_before_commit(void **state)
{
    (void)state;
    crash_scenario("mvcc-before-commit", 41, 23);
}

static void test_crash_mvcc_after_commit(void **state)
{
    (void)state;
    crash_scenario("mvcc-after-commit", 43, 19);
}

static void test_crash_snap_before_rename(void **state)
{
    (void)state;
    crash_scenario("snap-before-rename", 3, 2);
}

static void test_crash_snap_after_rename(void **state)
{
    (void)state;
    crash_scenario("snap-after-rename", 4, 3);
}

static void test_clean_child_run(void **state)
{
    (void)state;
    history *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    assert_int_equal(run_child("", 0, h), 0);
    assert_int_equal(h->max_acked[0], CHILD_ROUNDS * CHILD_PER_BATCH);
    verify_after_crash(h, 1);
    free(h);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--child") == 0) {
        snprintf(tu_tmp, sizeof tu_tmp, "%s", argv[2]);
        return child_main(argv[2], (unsigned)atoi(argv[3]), atoi(argv[4]));
    }
    /* clang-format off: one test per line */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_format),
        TU_TMP_TEST(test_fresh_layout),
        TU_TMP_TEST(test_restart_state_equal),
        TU_TMP_TEST(test_restart_leaves_applied_entries_on_disk),
        TU_TMP_TEST(test_snapshots_and_restart),
        TU_TMP_TEST(test_one_snapshot_file),
        TU_TMP_TEST(test_store_behind_snapshot),
        TU_TMP_TEST(test_unsynced_store_with_snapshot),
        TU_TMP_TEST(test_unsynced_store_log_only),
        TU_TMP_TEST(test_corrupt_wal_is_reported),
        TU_TMP_TEST(test_wal_failure_stops_member),
        TU_TMP_TEST(test_snapshot_write_failure_is_not_fatal),
        TU_TMP_TEST(test_snapshot_transfer_and_install),
        TU_TMP_TEST(test_snapshot_install_interrupted),
        TU_TMP_TEST(test_snapshots_of_the_file_as_it_is),
        TU_TMP_TEST(test_clean_child_run),
        TU_TMP_TEST(test_crash_wal_before_fsync),
        TU_TMP_TEST(test_crash_wal_after_fsync),
        TU_TMP_TEST(test_crash_wal_torn_write),
        TU_TMP_TEST(test_crash_mvcc_before_commit),
        TU_TMP_TEST(test_crash_mvcc_after_commit),
        TU_TMP_TEST(test_crash_snap_before_rename),
        TU_TMP_TEST(test_crash_snap_after_rename),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
