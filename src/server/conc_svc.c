/*
 * conc_svc.c: the Lock and Election services (v3lockpb, v3electionpb).
 *
 * etcd serves them on the server by running its client-side recipes (clientv3/concurrency:
 * Mutex and Election) against itself. So does cord: each call is a small state machine that
 * issues KV, Lease and Watch requests to this member's own services as virtual calls, so
 * every step is the same linearizable request a client would make, and the keys and
 * revisions are exactly etcd's:
 *
 *   Lock(name, lease)     key name/<lease in hex>; created in a txn if absent (lease 0: a
 *                         new lease of 60 s, not kept alive, as etcd's orphaned session);
 *                         held once every key under name/ created before it is deleted.
 *   Unlock(key)           deletes the key.
 *   Campaign(name, ...)   the same wait, with a value (proclaimed again when the key already
 *                         existed with another value).
 *   Proclaim, Resign      a txn on the leader key guarded by its create revision.
 *   Leader(name)          the key under name/ created first.
 *   Observe(name)         a stream of the leader key's values, leader after leader.
 *
 * Errors of a step are passed on with their message and code Unknown (etcd's servers return
 * the error of their internal client, a plain Go error). A Lock that fails or whose
 * client goes away while it waits deletes its key, as etcd's Mutex does; a Campaign does so
 * when its client goes away.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keyrange.h"
#include "etcdserverpb/rpc.pb-c.h"
#include "server/member_internal.h"
#include "v3electionpb/v3election.pb-c.h"
#include "v3lockpb/v3lock.pb-c.h"

#define SESSION_TTL  60 /* concurrency.NewSession's default TTL, for lease 0 */
#define GRPC_UNKNOWN 2  /* a plain Go error returned by etcd's servers */

enum conc_kind { K_LOCK, K_CAMPAIGN, K_OBSERVE };

typedef struct conc_op conc_op;
/* One step's answer: grpc status, message, and the reply (unary) or the awaited event
 * (watch: the WatchResponse that carried it). */
typedef void (*conc_step)(conc_op *op, int status, const char *message, const uint8_t *msg,
                          size_t len);

struct conc_op {
    member *m;
    api_call *call; /* the client's call; NULL once it is gone */
    enum conc_kind kind;
    /* the internal call in flight (unary or watch) and where its answer goes */
    api_call *ic;
    bool ic_watch;
    conc_step next;
    conc_op *ready_next;
    int ic_status;
    char *ic_message;
    uint8_t *ic_reply;
    size_t ic_reply_len;
    /* watch: what ends the wait */
    bool want_put; /* Observe: the first put under the prefix; else a delete of the key */
    /* the recipe's state */
    uint8_t *pfx; /* name + "/" */
    size_t pfx_len;
    uint8_t *pfx_end; /* the end of the range of keys under pfx */
    size_t pfx_end_len;
    uint8_t *name;
    size_t name_len;
    char *key; /* our key (name/<hex lease>, or the one the request names) */
    size_t key_len;
    uint8_t *value;
    size_t value_len;
    int64_t lease;
    int64_t rev;                      /* our key's create revision */
    bool own_key;                     /* our key may exist: delete it on failure (Lock) or cancel */
    Etcdserverpb__ResponseHeader hdr; /* of the step that decides the answer */
    bool has_hdr;
};

static void op_free(conc_op *op)
{
    free(op->ic_message);
    free(op->ic_reply);
    free(op->pfx);
    free(op->pfx_end);
    free(op->name);
    free(op->key);
    free(op->value);
    free(op);
}

/* The client has its answer: forget its call, free the op (its key, if any, stays). */
static void op_done(conc_op *op)
{
    api_call_set_ud(op->call, NULL);
    op->call = NULL;
    op_free(op);
}

/* op->key = a ++ b. Returns false when out of memory. */
static bool set_key(conc_op *op, const void *a, size_t alen, const void *b, size_t blen)
{
    free(op->key);
    op->key_len = alen + blen;
    op->key = malloc(op->key_len ? op->key_len : 1);
    if (!op->key)
        return false;
    if (alen)
        memcpy(op->key, a, alen);
    if (blen)
        memcpy(op->key + alen, b, blen);
    return true;
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

/* ------------------------------------------------------------ internal calls */

/* Answers of internal calls are taken up from the member's idle handle, never inside the
 * callback that brought them: that may be the watch hub delivering events (which must not
 * open a watch from inside), the apply loop's replies, or ic_start itself. */
static void ic_complete(conc_op *op)
{
    int status = op->ic_status;
    char *message = op->ic_message;
    uint8_t *reply = op->ic_reply;
    size_t len = op->ic_reply_len;
    op->ic_message = NULL;
    op->ic_reply = NULL;
    op->ic_reply_len = 0;
    conc_step fn = op->next;
    fn(op, status, message ? message : "", reply, len);
    free(message);
    free(reply);
}

static void on_conc_idle(uv_idle_t *h)
{
    member *m = h->data;
    while (m->conc_ready) {
        conc_op *op = m->conc_ready;
        m->conc_ready = op->ready_next;
        op->ready_next = NULL;
        ic_complete(op);
    }
    if (!m->conc_ready)
        uv_idle_stop(h);
}

static void op_queue(conc_op *op)
{
    member *m = op->m;
    if (m->stopping) { /* the server finishes the calls; the idle handle is closed */
        if (op->call)
            api_call_set_ud(op->call, NULL);
        op_free(op);
        return;
    }
    op->ready_next = m->conc_ready;
    m->conc_ready = op;
    if (!uv_is_active((uv_handle_t *)&m->conc_idle))
        uv_idle_start(&m->conc_idle, on_conc_idle);
}

/* The call's answer is in: close it, and take the answer up from the idle handle. */
static void ic_end(conc_op *op, int status, const char *message)
{
    op->ic_status = status;
    free(op->ic_message);
    op->ic_message = strdup(message ? message : "");
    api_call *ic = op->ic;
    op->ic = NULL;
    api_call_virtual_close(ic);
    op_queue(op);
}

static void ic_keep_reply(conc_op *op, const uint8_t *msg, size_t len)
{
    free(op->ic_reply);
    op->ic_reply = dup_bytes(msg, len);
    op->ic_reply_len = op->ic_reply ? len : 0;
}

static void unary_message(void *ctx, const uint8_t *msg, size_t len)
{
    conc_op *op = ctx;
    ic_keep_reply(op, msg, len);
}

static void unary_finish(void *ctx, int status, const char *message)
{
    conc_op *op = ctx;
    if (status == 0 && !op->ic_reply)
        ic_end(op, API_GRPC_INTERNAL, "etcdserver: no reply");
    else
        ic_end(op, status, message);
}

static const api_virtual_ops unary_ops = {.on_message = unary_message, .on_finish = unary_finish};

/* Watch: the first event that ends the wait (a delete of the key; Observe's first put), or
 * for Observe following a leader every event. */
static void watch_message(void *ctx, const uint8_t *msg, size_t len)
{
    conc_op *op = ctx;
    if (!op->ic)
        return;
    Etcdserverpb__WatchResponse *wr = etcdserverpb__watch_response__unpack(NULL, len, msg);
    if (!wr) {
        ic_end(op, API_GRPC_INTERNAL, "etcdserver: malformed watch response");
        return;
    }
    if (wr->canceled) {
        const char *why = wr->compact_revision ? "etcdserver: mvcc: required revision has been "
                                                 "compacted"
                                               : wr->cancel_reason;
        int status = wr->compact_revision ? 11 /* OutOfRange */ : API_GRPC_UNAVAILABLE;
        etcdserverpb__watch_response__free_unpacked(wr, NULL);
        ic_end(op, status, why && *why ? why : "etcdserver: watch canceled");
        return;
    }
    bool end = false;
    for (size_t i = 0; i < wr->n_events && !end; i++) {
        bool del = wr->events[i]->type == MVCCPB__EVENT__EVENT_TYPE__DELETE;
        end = op->want_put ? !del : del;
    }
    bool any = wr->n_events > 0;
    etcdserverpb__watch_response__free_unpacked(wr, NULL);
    if (end) {
        ic_keep_reply(op, msg, len);
        ic_end(op, 0, "");
    } else if (any && op->kind == K_OBSERVE && !op->want_put && op->call) {
        /* following a leader: each of its puts is news (see observe_event); while waiting for
         * a first leader, deletes under the prefix are ignored, as etcd's observe does */
        conc_step fn = op->next;
        fn(op, -1, "", msg, len);
    }
}

static void watch_finish(void *ctx, int status, const char *message)
{
    conc_op *op = ctx;
    if (op->ic)
        ic_end(op, status ? status : API_GRPC_UNAVAILABLE,
               status ? message : "etcdserver: watch ended");
}

static const api_virtual_ops watch_ops = {.on_message = watch_message, .on_finish = watch_finish};

/* Starts an internal call of `path` with request `req`; `next` gets its answer. A unary
 * call is half-closed after its request; a watch stays open until its event. */
static void ic_start(conc_op *op, const char *path, const ProtobufCMessage *req, bool watch,
                     conc_step next)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    op->next = next;
    op->ic_watch = watch;
    op->ic = NULL;
    if (member_pack(req, &buf, &n) == 0)
        op->ic = api_call_virtual_new(op->m->api, path, watch ? &watch_ops : &unary_ops, op);
    if (!op->ic) {
        free(buf);
        op->ic_status = API_GRPC_UNAVAILABLE;
        free(op->ic_message);
        op->ic_message = strdup("etcdserver: cannot start an internal request");
        op_queue(op);
        return;
    }
    api_call *ic = op->ic;
    api_call_virtual_deliver(ic, buf, n);
    free(buf);
    if (!watch && op->ic == ic)
        api_call_virtual_half_close(ic);
}

/* ------------------------------------------------------------ requests */

/* A single key, or with `prefix` the keys under op->pfx. */
static void start_range(conc_op *op, const uint8_t *key, size_t key_len, bool prefix,
                        bool last_create, int64_t max_create, conc_step next)
{
    Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rq.key.data = (uint8_t *)key;
    rq.key.len = key_len;
    if (prefix) {
        assert(key == op->pfx);
        rq.range_end.data = op->pfx_end;
        rq.range_end.len = op->pfx_end_len;
        rq.limit = 1;
        rq.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE;
        rq.sort_order = last_create ? ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND
                                    : ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
        rq.max_create_revision = max_create;
    }
    ic_start(op, "/etcdserverpb.KV/Range", &rq.base, false, next);
}

static void start_watch(conc_op *op, const uint8_t *key, size_t key_len, bool prefix, int64_t from,
                        bool want_put, conc_step next)
{
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key.data = (uint8_t *)key;
    cr.key.len = key_len;
    if (prefix) {
        assert(key == op->pfx);
        cr.range_end.data = op->pfx_end;
        cr.range_end.len = op->pfx_end_len;
    }
    cr.start_revision = from;
    Etcdserverpb__WatchRequest wr = ETCDSERVERPB__WATCH_REQUEST__INIT;
    wr.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    wr.create_request = &cr;
    op->want_put = want_put;
    ic_start(op, "/etcdserverpb.Watch/Watch", &wr.base, true, next);
}

/* Txn: if our key's create revision is `create_rev`, then `then_ops`, else `else_ops`. */
static void start_guarded(conc_op *op, int64_t create_rev, Etcdserverpb__RequestOp **then_ops,
                          size_t n_then, Etcdserverpb__RequestOp **else_ops, size_t n_else,
                          conc_step next)
{
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
    cmp.key.data = (uint8_t *)op->key;
    cmp.key.len = op->key_len;
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
    cmp.create_revision = create_rev;
    Etcdserverpb__Compare *cmps[1] = {&cmp};
    Etcdserverpb__TxnRequest tx = ETCDSERVERPB__TXN_REQUEST__INIT;
    tx.n_compare = 1;
    tx.compare = cmps;
    tx.n_success = n_then;
    tx.success = then_ops;
    tx.n_failure = n_else;
    tx.failure = else_ops;
    ic_start(op, "/etcdserverpb.KV/Txn", &tx.base, false, next);
}

static void start_delete_key(conc_op *op, conc_step next)
{
    Etcdserverpb__DeleteRangeRequest rq = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    rq.key.data = (uint8_t *)op->key;
    rq.key.len = op->key_len;
    ic_start(op, "/etcdserverpb.KV/DeleteRange", &rq.base, false, next);
}

/* A put of our key with our value and lease (the request op points at *put). */
static void put_mine(const conc_op *op, Etcdserverpb__PutRequest *put, Etcdserverpb__RequestOp *rop)
{
    put->key.data = (uint8_t *)op->key;
    put->key.len = op->key_len;
    put->value.data = op->value;
    put->value.len = op->value_len;
    put->lease = op->lease;
    rop->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    rop->request_put = put;
}

/* Election.Proclaim: put our value if our key still has our create revision. */
static void start_proclaim(conc_op *op, conc_step next)
{
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__RequestOp pop = ETCDSERVERPB__REQUEST_OP__INIT;
    put_mine(op, &put, &pop);
    Etcdserverpb__RequestOp *then_ops[1] = {&pop};
    start_guarded(op, op->rev, then_ops, 1, NULL, 0, next);
}

static void keep_header(conc_op *op, const Etcdserverpb__ResponseHeader *h)
{
    Etcdserverpb__ResponseHeader init = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    op->hdr = init;
    op->has_hdr = h != NULL;
    if (h) {
        op->hdr.cluster_id = h->cluster_id;
        op->hdr.member_id = h->member_id;
        op->hdr.revision = h->revision;
        op->hdr.raft_term = h->raft_term;
    }
}

static Etcdserverpb__ResponseHeader *kept_header(conc_op *op)
{
    return op->has_hdr ? &op->hdr : NULL;
}

/* ------------------------------------------------------------ ending */

static void cleanup_done(conc_op *op, int status, const char *message, const uint8_t *msg,
                         size_t len)
{
    (void)status, (void)message, (void)msg, (void)len;
    op_free(op);
}

/* The op is over: delete our key if it must go, then free. */
static void op_finish(conc_op *op, bool delete_key)
{
    if (delete_key && op->own_key) {
        op->own_key = false;
        start_delete_key(op, cleanup_done);
        return;
    }
    op_free(op);
}

/* Fails the client's call (if still there) with a step's error. */
static void op_fail(conc_op *op, int status, const char *message)
{
    if (op->call) {
        api_call_set_ud(op->call, NULL);
        member_reply_error(op->call, status ? status : GRPC_UNKNOWN, message);
        op->call = NULL;
    }
    op_finish(op, op->kind == K_LOCK);
}

/* The client went away: a Lock or Campaign still waiting gives its key back. */
static void on_conc_close(api_call *call, void *ud)
{
    (void)ud;
    conc_op *op = api_call_get_ud(call);
    if (!op)
        return;
    op->call = NULL;
    if (op->ic && op->ic_watch) /* waiting for an event: stop; the step sees the call gone */
        ic_end(op, 1 /* CANCELLED */, "context canceled");
    /* a unary step in flight (or an answer queued): the step sees op->call NULL */
}

void conc_svc_init(member *m)
{
    uv_idle_init(m->loop, &m->conc_idle);
    m->conc_idle.data = m;
    m->conc_ready = NULL;
}

/* The member stops: answers not taken up yet are dropped with their ops (their internal
 * calls are closed; the clients' calls are finished by the server's stop). */
void conc_svc_stop(member *m)
{
    while (m->conc_ready) {
        conc_op *op = m->conc_ready;
        m->conc_ready = op->ready_next;
        if (op->call)
            api_call_set_ud(op->call, NULL);
        op_free(op);
    }
}

/* At the start of each step: true when the op is over (client gone or the step failed). */
static bool step_over(conc_op *op, int status, const char *message)
{
    if (!op->call) {
        op_finish(op, true);
        return true;
    }
    if (status != 0) { /* etcd returns its client's error: a plain error, code Unknown */
        op_fail(op, GRPC_UNKNOWN, message);
        return true;
    }
    return false;
}

static conc_op *op_new(member *m, api_call *call, enum conc_kind kind, const uint8_t *name,
                       size_t name_len)
{
    conc_op *op = calloc(1, sizeof *op);
    if (!op)
        goto fail;
    op->m = m;
    op->call = call;
    op->kind = kind;
    op->name = dup_bytes(name, name_len);
    op->name_len = name_len;
    op->pfx = malloc(name_len + 1);
    op->pfx_end = malloc(name_len + 1);
    if (!op->name || !op->pfx || !op->pfx_end)
        goto fail;
    if (name_len)
        memcpy(op->pfx, name, name_len);
    op->pfx[name_len] = '/';
    op->pfx_len = name_len + 1;
    op->pfx_end_len = key_prefix_end(op->pfx, op->pfx_len, op->pfx_end);
    api_call_set_ud(call, op);
    return op;
fail:
    if (op)
        op_free(op);
    member_reply_error(call, 8, "etcdserver: out of memory");
    return NULL;
}

/* ------------------------------------------------------------ Lock and Campaign */

static void acquire_txn(conc_op *op);
static void wait_deletes(conc_op *op);
static void reply_acquired(conc_op *op);

static void lease_granted(conc_op *op, int status, const char *message, const uint8_t *msg,
                          size_t len)
{
    if (step_over(op, status, message))
        return;
    Etcdserverpb__LeaseGrantResponse *r =
        etcdserverpb__lease_grant_response__unpack(NULL, len, msg);
    if (!r || r->id == 0) {
        if (r)
            etcdserverpb__lease_grant_response__free_unpacked(r, NULL);
        op_fail(op, API_GRPC_INTERNAL, "etcdserver: lease grant failed");
        return;
    }
    op->lease = r->id;
    etcdserverpb__lease_grant_response__free_unpacked(r, NULL);
    acquire_txn(op);
}

/* concurrency.NewSession with lease 0 grants a lease of SESSION_TTL (and the servers orphan
 * the session: nobody keeps it alive). */
static void acquire_start(conc_op *op)
{
    if (op->lease != 0) {
        acquire_txn(op);
        return;
    }
    Etcdserverpb__LeaseGrantRequest rq = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    rq.ttl = SESSION_TTL;
    ic_start(op, "/etcdserverpb.Lease/LeaseGrant", &rq.base, false, lease_granted);
}

static const Etcdserverpb__RangeResponse *range_of(const Etcdserverpb__TxnResponse *t, size_t i)
{
    if (i >= t->n_responses || !t->responses[i] ||
        t->responses[i]->response_case != ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE)
        return NULL;
    return t->responses[i]->response_range;
}

static void proclaimed_at_campaign(conc_op *op, int status, const char *message, const uint8_t *msg,
                                   size_t len);

static void acquire_txn_done(conc_op *op, int status, const char *message, const uint8_t *msg,
                             size_t len)
{
    if (step_over(op, status, message))
        return;
    Etcdserverpb__TxnResponse *t = etcdserverpb__txn_response__unpack(NULL, len, msg);
    const Etcdserverpb__RangeResponse *mine = t && !t->succeeded ? range_of(t, 0) : NULL;
    if (!t || !t->header || (!t->succeeded && (!mine || mine->n_kvs == 0))) {
        if (t)
            etcdserverpb__txn_response__free_unpacked(t, NULL);
        /* not a txn answer we asked for (the else branch reads the key its compare saw) */
        op_fail(op, API_GRPC_INTERNAL, "etcdserver: unexpected txn response");
        return;
    }
    op->rev = t->succeeded ? t->header->revision : mine->kvs[0]->create_revision;
    bool proclaim = false;
    if (!t->succeeded && op->kind == K_CAMPAIGN) {
        const Mvccpb__KeyValue *kv = mine->kvs[0];
        proclaim = kv->value.len != op->value_len ||
                   (op->value_len && memcmp(kv->value.data, op->value, op->value_len) != 0);
    }
    bool held = false;
    if (op->kind == K_LOCK) {
        const Etcdserverpb__RangeResponse *owner = range_of(t, 1);
        held = !owner || owner->n_kvs == 0 || owner->kvs[0]->create_revision == op->rev;
    }
    keep_header(op, t->header);
    etcdserverpb__txn_response__free_unpacked(t, NULL);
    if (held) {
        reply_acquired(op);
        return;
    }
    if (proclaim) {
        /* Election.Campaign: our key is there with another value: proclaim ours */
        start_proclaim(op, proclaimed_at_campaign);
        return;
    }
    wait_deletes(op);
}

static void proclaimed_at_campaign(conc_op *op, int status, const char *message, const uint8_t *msg,
                                   size_t len)
{
    if (step_over(op, status, message))
        return;
    Etcdserverpb__TxnResponse *t = etcdserverpb__txn_response__unpack(NULL, len, msg);
    bool ok = t && t->succeeded;
    if (t)
        etcdserverpb__txn_response__free_unpacked(t, NULL);
    if (!ok) { /* etcd: Proclaim fails, Campaign resigns and returns the error */
        op_fail(op, GRPC_UNKNOWN, "election: not leader");
        return;
    }
    wait_deletes(op);
}

/* Our key exists at op->rev: create it if absent, read it if there, and (Lock) read the
 * owner, the key under the prefix created first. */
static void acquire_txn(conc_op *op)
{
    char hex[24];
    int hl = snprintf(hex, sizeof hex, "%" PRIx64, (uint64_t)op->lease);
    if (!set_key(op, op->pfx, op->pfx_len, hex, (size_t)hl)) {
        op_fail(op, 8, "etcdserver: out of memory");
        return;
    }

    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__RequestOp pop = ETCDSERVERPB__REQUEST_OP__INIT;
    put_mine(op, &put, &pop);

    Etcdserverpb__RangeRequest get = ETCDSERVERPB__RANGE_REQUEST__INIT;
    get.key.data = (uint8_t *)op->key;
    get.key.len = op->key_len;
    Etcdserverpb__RequestOp gop = ETCDSERVERPB__REQUEST_OP__INIT;
    gop.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    gop.request_range = &get;

    Etcdserverpb__RangeRequest owner = ETCDSERVERPB__RANGE_REQUEST__INIT;
    owner.key.data = op->pfx;
    owner.key.len = op->pfx_len;
    owner.range_end.data = op->pfx_end;
    owner.range_end.len = op->pfx_end_len;
    owner.limit = 1;
    owner.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE;
    owner.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
    Etcdserverpb__RequestOp oop = ETCDSERVERPB__REQUEST_OP__INIT;
    oop.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    oop.request_range = &owner;

    Etcdserverpb__RequestOp *then_ops[2] = {&pop, &oop};
    Etcdserverpb__RequestOp *else_ops[2] = {&gop, &oop};
    size_t n = op->kind == K_LOCK ? 2 : 1;
    op->own_key = true;
    start_guarded(op, 0, then_ops, n, else_ops, n, acquire_txn_done);
}

static void waited_delete(conc_op *op, int status, const char *message, const uint8_t *msg,
                          size_t len)
{
    (void)msg, (void)len;
    if (step_over(op, status, message))
        return;
    wait_deletes(op);
}

static void lock_checked(conc_op *op, int status, const char *message, const uint8_t *msg,
                         size_t len);

static void waited_last(conc_op *op, int status, const char *message, const uint8_t *msg,
                        size_t len)
{
    if (step_over(op, status, message))
        return;
    Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(NULL, len, msg);
    if (!r || !r->header) {
        if (r)
            etcdserverpb__range_response__free_unpacked(r, NULL);
        op_fail(op, API_GRPC_INTERNAL, "etcdserver: malformed range response");
        return;
    }
    if (r->n_kvs == 0) {
        etcdserverpb__range_response__free_unpacked(r, NULL);
        if (op->kind == K_LOCK) /* is our key still there (its lease may have expired)? */
            start_range(op, (const uint8_t *)op->key, op->key_len, false, false, 0, lock_checked);
        else
            reply_acquired(op);
        return;
    }
    /* wait for the newest of the older keys to go, then look again */
    uint8_t *k = dup_bytes(r->kvs[0]->key.data, r->kvs[0]->key.len);
    size_t kl = r->kvs[0]->key.len;
    int64_t from = r->header->revision;
    etcdserverpb__range_response__free_unpacked(r, NULL);
    if (!k) {
        op_fail(op, 8, "etcdserver: out of memory");
        return;
    }
    start_watch(op, k, kl, false, from, false, waited_delete);
    free(k);
}

/* waitDeletes: until no key under the prefix was created before ours. */
static void wait_deletes(conc_op *op)
{
    start_range(op, op->pfx, op->pfx_len, true, true, op->rev - 1, waited_last);
}

static void lock_checked(conc_op *op, int status, const char *message, const uint8_t *msg,
                         size_t len)
{
    if (step_over(op, status, message))
        return;
    Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(NULL, len, msg);
    bool there = r && r->n_kvs > 0;
    if (there)
        keep_header(op, r->header);
    if (r)
        etcdserverpb__range_response__free_unpacked(r, NULL);
    if (!there) {
        op->own_key = false;
        op_fail(op, GRPC_UNKNOWN, "mutex: session is expired");
        return;
    }
    reply_acquired(op);
}

static void reply_acquired(conc_op *op)
{
    Etcdserverpb__ResponseHeader *h = kept_header(op);
    if (op->kind == K_LOCK) {
        V3lockpb__LockResponse resp = V3LOCKPB__LOCK_RESPONSE__INIT;
        resp.header = h;
        resp.key.data = (uint8_t *)op->key;
        resp.key.len = op->key_len;
        member_reply_pb(op->call, &resp.base);
    } else {
        V3electionpb__LeaderKey lk = V3ELECTIONPB__LEADER_KEY__INIT;
        lk.name.data = op->name;
        lk.name.len = op->name_len;
        lk.key.data = (uint8_t *)op->key;
        lk.key.len = op->key_len;
        lk.rev = op->rev;
        lk.lease = op->lease;
        V3electionpb__CampaignResponse resp = V3ELECTIONPB__CAMPAIGN_RESPONSE__INIT;
        resp.header = h;
        resp.leader = &lk;
        member_reply_pb(op->call, &resp.base);
    }
    op_done(op); /* held: the key stays */
}

static void on_lock(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    UNPACK_OR_FAIL(V3lockpb__LockRequest, v3lockpb__lock_request__unpack, call, msg, len);
    conc_op *op = op_new(ud, call, K_LOCK, req->name.data, req->name.len);
    if (op)
        op->lease = req->lease;
    v3lockpb__lock_request__free_unpacked(req, NULL);
    if (op)
        acquire_start(op);
}

static void on_campaign(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    UNPACK_OR_FAIL(V3electionpb__CampaignRequest, v3electionpb__campaign_request__unpack, call, msg,
                   len);
    conc_op *op = op_new(ud, call, K_CAMPAIGN, req->name.data, req->name.len);
    if (op) {
        op->lease = req->lease;
        op->value = dup_bytes(req->value.data, req->value.len);
        op->value_len = req->value.len;
    }
    v3electionpb__campaign_request__free_unpacked(req, NULL);
    if (op && !op->value)
        op_fail(op, 8, "etcdserver: out of memory");
    else if (op)
        acquire_start(op);
}

/* ------------------------------------------------------------ one-step calls */

/* Unlock, Proclaim and Resign answer with the header of their one request. */
static void answer_header(conc_op *op, int status, const char *message, const uint8_t *msg,
                          size_t len)
{
    if (step_over(op, status, message))
        return;
    bool not_leader = false;
    if (op->kind == K_LOCK) { /* Unlock: a DeleteRangeResponse */
        Etcdserverpb__DeleteRangeResponse *r =
            etcdserverpb__delete_range_response__unpack(NULL, len, msg);
        if (r) {
            keep_header(op, r->header);
            etcdserverpb__delete_range_response__free_unpacked(r, NULL);
        }
    } else { /* Proclaim or Resign: a TxnResponse */
        Etcdserverpb__TxnResponse *t = etcdserverpb__txn_response__unpack(NULL, len, msg);
        if (t) {
            keep_header(op, t->header);
            not_leader = !t->succeeded && op->value != NULL; /* only Proclaim has a value */
            etcdserverpb__txn_response__free_unpacked(t, NULL);
        }
    }
    if (not_leader) {
        op_fail(op, GRPC_UNKNOWN, "election: not leader");
        return;
    }
    /* the three responses are all { header = 1 } */
    V3lockpb__UnlockResponse resp = V3LOCKPB__UNLOCK_RESPONSE__INIT;
    resp.header = kept_header(op);
    member_reply_pb(op->call, &resp.base);
    op_done(op);
}

static void on_unlock(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    UNPACK_OR_FAIL(V3lockpb__UnlockRequest, v3lockpb__unlock_request__unpack, call, msg, len);
    conc_op *op = op_new(ud, call, K_LOCK, NULL, 0);
    bool ok = op && set_key(op, req->key.data, req->key.len, NULL, 0);
    v3lockpb__unlock_request__free_unpacked(req, NULL);
    if (!op)
        return;
    if (!ok) {
        op_fail(op, 8, "etcdserver: out of memory");
        return;
    }
    start_delete_key(op, answer_header);
}

/* Proclaim and Resign: a txn on the leader key, guarded by its create revision. */
static void leader_txn(api_call *call, member *m, const V3electionpb__LeaderKey *lk,
                       const ProtobufCBinaryData *value)
{
    if (!lk) {
        member_reply_error(call, GRPC_UNKNOWN, "\"leader\" field must be provided");
        return;
    }
    conc_op *op = op_new(m, call, K_CAMPAIGN, lk->name.data, lk->name.len);
    if (!op)
        return;
    if (value)
        op->value = dup_bytes(value->data, value->len);
    if (!set_key(op, lk->key.data, lk->key.len, NULL, 0) || (value && !op->value)) {
        op_fail(op, 8, "etcdserver: out of memory");
        return;
    }
    op->rev = lk->rev;
    op->lease = lk->lease;
    if (value) {
        op->value_len = value->len;
        start_proclaim(op, answer_header);
        return;
    }
    Etcdserverpb__DeleteRangeRequest del = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    del.key.data = (uint8_t *)op->key;
    del.key.len = op->key_len;
    Etcdserverpb__RequestOp rop = ETCDSERVERPB__REQUEST_OP__INIT;
    rop.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    rop.request_delete_range = &del;
    Etcdserverpb__RequestOp *then_ops[1] = {&rop};
    start_guarded(op, op->rev, then_ops, 1, NULL, 0, answer_header);
}

static void on_proclaim(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    UNPACK_OR_FAIL(V3electionpb__ProclaimRequest, v3electionpb__proclaim_request__unpack, call, msg,
                   len);
    leader_txn(call, ud, req->leader, &req->value);
    v3electionpb__proclaim_request__free_unpacked(req, NULL);
}

static void on_resign(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    UNPACK_OR_FAIL(V3electionpb__ResignRequest, v3electionpb__resign_request__unpack, call, msg,
                   len);
    leader_txn(call, ud, req->leader, NULL);
    v3electionpb__resign_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------ Leader and Observe */

/* A LeaderResponse to the client: a stream message (Observe) or the reply (Leader). */
static void send_leader(conc_op *op, Etcdserverpb__ResponseHeader *h, Mvccpb__KeyValue *kv)
{
    V3electionpb__LeaderResponse resp = V3ELECTIONPB__LEADER_RESPONSE__INIT;
    resp.header = h;
    resp.kv = kv;
    uint8_t *buf;
    size_t n;
    if (member_pack(&resp.base, &buf, &n) != 0)
        return;
    if (op->kind == K_OBSERVE)
        api_call_send(op->call, buf, n);
    else
        api_call_reply(op->call, buf, n);
    free(buf);
}

static void leader_read(conc_op *op, int status, const char *message, const uint8_t *msg,
                        size_t len)
{
    if (step_over(op, status, message))
        return;
    Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(NULL, len, msg);
    if (!r || r->n_kvs == 0) {
        if (r)
            etcdserverpb__range_response__free_unpacked(r, NULL);
        op_fail(op, GRPC_UNKNOWN, "election: no leader");
        return;
    }
    send_leader(op, r->header, r->kvs[0]);
    etcdserverpb__range_response__free_unpacked(r, NULL);
    op_done(op);
}

static void on_leader(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    UNPACK_OR_FAIL(V3electionpb__LeaderRequest, v3electionpb__leader_request__unpack, call, msg,
                   len);
    conc_op *op = op_new(ud, call, K_CAMPAIGN, req->name.data, req->name.len);
    v3electionpb__leader_request__free_unpacked(req, NULL);
    if (op)
        start_range(op, op->pfx, op->pfx_len, true, false, 0, leader_read);
}

/* Observe (concurrency.Election.observe): read the leader; with none, wait for the first put
 * under the prefix; send it; then send each put of that key until it is deleted; again. */
static void observe_round(conc_op *op);

static void observe_ended(conc_op *op, int status, const char *message)
{
    (void)status, (void)message;
    /* etcd's observe loop closes its channel on any error: the stream ends with OK */
    if (op->call) {
        api_call_set_ud(op->call, NULL);
        api_call_finish(op->call, 0, NULL);
        op->call = NULL;
    }
    op_free(op);
}

/* At the start of Observe's read and first-put steps: true when the stream is over (the
 * client gone, or the step failed). */
static bool observe_over(conc_op *op, int status, const char *message)
{
    if (!op->call) {
        op_free(op);
        return true;
    }
    if (status != 0) {
        observe_ended(op, status, message);
        return true;
    }
    return false;
}

static void observe_event(conc_op *op, int status, const char *message, const uint8_t *msg,
                          size_t len)
{
    if (!op->call) {
        op_free(op);
        return;
    }
    if (status > 0) {
        observe_ended(op, status, message);
        return;
    }
    /* status -1: puts of the leader key (sent on); 0: its delete (after any puts before it) */
    Etcdserverpb__WatchResponse *wr = etcdserverpb__watch_response__unpack(NULL, len, msg);
    if (!wr) {
        observe_ended(op, API_GRPC_INTERNAL, "");
        return;
    }
    for (size_t i = 0; i < wr->n_events && op->call; i++) {
        if (wr->events[i]->type == MVCCPB__EVENT__EVENT_TYPE__DELETE)
            break;
        send_leader(op, wr->header, wr->events[i]->kv);
    }
    etcdserverpb__watch_response__free_unpacked(wr, NULL);
    if (status == 0)
        observe_round(op);
}

/* Follow the leader key `kv` from the revision after `rev`. */
static void observe_follow(conc_op *op, const Mvccpb__KeyValue *kv, int64_t rev)
{
    uint8_t *k = dup_bytes(kv->key.data, kv->key.len);
    if (!k) {
        observe_ended(op, 8, "");
        return;
    }
    start_watch(op, k, kv->key.len, false, rev + 1, false, observe_event);
    free(k);
}

static void observe_first_put(conc_op *op, int status, const char *message, const uint8_t *msg,
                              size_t len)
{
    if (observe_over(op, status, message))
        return;
    Etcdserverpb__WatchResponse *wr = etcdserverpb__watch_response__unpack(NULL, len, msg);
    Mvccpb__KeyValue *kv = NULL;
    for (size_t i = 0; wr && i < wr->n_events && !kv; i++)
        if (wr->events[i]->type != MVCCPB__EVENT__EVENT_TYPE__DELETE)
            kv = wr->events[i]->kv;
    if (!kv || !wr->header) {
        if (wr)
            etcdserverpb__watch_response__free_unpacked(wr, NULL);
        observe_ended(op, API_GRPC_INTERNAL, "");
        return;
    }
    wr->header->revision = kv->mod_revision; /* as etcd: the put's revision */
    send_leader(op, wr->header, kv);
    if (op->call)
        observe_follow(op, kv, kv->mod_revision);
    else
        op_free(op);
    etcdserverpb__watch_response__free_unpacked(wr, NULL);
}

static void observe_read(conc_op *op, int status, const char *message, const uint8_t *msg,
                         size_t len)
{
    if (observe_over(op, status, message))
        return;
    Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(NULL, len, msg);
    if (!r || !r->header) {
        if (r)
            etcdserverpb__range_response__free_unpacked(r, NULL);
        observe_ended(op, API_GRPC_INTERNAL, "");
        return;
    }
    if (r->n_kvs == 0) {
        int64_t from = r->header->revision;
        etcdserverpb__range_response__free_unpacked(r, NULL);
        start_watch(op, op->pfx, op->pfx_len, true, from, true, observe_first_put);
        return;
    }
    send_leader(op, r->header, r->kvs[0]);
    if (op->call)
        observe_follow(op, r->kvs[0], r->header->revision);
    else
        op_free(op);
    etcdserverpb__range_response__free_unpacked(r, NULL);
}

static void observe_round(conc_op *op)
{
    start_range(op, op->pfx, op->pfx_len, true, false, 0, observe_read);
}

static void on_observe(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    if (api_call_get_ud(call))
        return; /* one request per stream (a server-streaming method) */
    UNPACK_OR_FAIL(V3electionpb__LeaderRequest, v3electionpb__leader_request__unpack, call, msg,
                   len);
    conc_op *op = op_new(ud, call, K_OBSERVE, req->name.data, req->name.len);
    v3electionpb__leader_request__free_unpacked(req, NULL);
    if (op)
        observe_round(op);
}

/* Observe is server-streaming: the client's half-close after its request ends nothing. */
static void on_observe_half_close(api_call *call, void *ud)
{
    (void)call, (void)ud;
}

const api_method conc_methods[] = {
    {"/v3lockpb.Lock/Lock", on_lock, on_conc_close, NULL, NULL},
    {"/v3lockpb.Lock/Unlock", on_unlock, on_conc_close, NULL, NULL},
    {"/v3electionpb.Election/Campaign", on_campaign, on_conc_close, NULL, NULL},
    {"/v3electionpb.Election/Proclaim", on_proclaim, on_conc_close, NULL, NULL},
    {"/v3electionpb.Election/Leader", on_leader, on_conc_close, NULL, NULL},
    {"/v3electionpb.Election/Observe", on_observe, on_conc_close, NULL, on_observe_half_close},
    {"/v3electionpb.Election/Resign", on_resign, on_conc_close, NULL, NULL},
};
const size_t conc_n_methods = sizeof conc_methods / sizeof conc_methods[0];
