/*
 * cluster_svc.c: membership. The Cluster service (MemberAdd, MemberRemove,
 * MemberUpdate, MemberPromote, MemberList) and the replicated member table.
 *
 * Who votes is the Raft core's configuration (joint consensus, learners).
 * What a member is called and where it listens is the member table: an
 * LMDB database "members" in the store, changed only by applied entries
 * (REQ_MEMBER_UPDATE from MemberAdd/MemberUpdate, REQ_MEMBER_ATTR from a
 * member publishing its name and client URLs), so every member holds the
 * same table; it travels inside snapshots with the rest of the store. The
 * founding members are known from --initial-cluster as well.
 *
 * Member ids are derived from the first peer URL and the cluster token, so
 * a member started with --initial-cluster-state existing computes the id
 * that MemberAdd gave it.
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/log.h"
#include "etcdserverpb/rpc.pb-c.h"
#include "server/member_internal.h"

#define MEMBERS_DB "members"

/* --------------------------------------------------------------- table */

peer_info *cluster_find(member *m, uint64_t id)
{
    for (uint32_t i = 0; i < m->n_peers; i++)
        if (m->peers[i].id == id)
            return &m->peers[i];
    return NULL;
}

/* Whether the table must keep id's record: a member of the configuration (or
 * still followed by the core on its way out), or this member itself. */
static bool cluster_needed(member *m, uint64_t id)
{
    if (!m->r)
        return true; /* start-up, before the core knows the configuration */
    const raft_conf *c = raft_get_conf(m->r);
    return id == m->id || c->n_voters == 0 || raft_conf_is_voter(c, id) ||
           raft_conf_is_learner(c, id) || raft_is_tracking(m->r, id);
}

static int record_delete(MDB_txn *txn, uint64_t id);

/* A slot whose member has left the configuration, or NULL. */
static peer_info *reusable_slot(member *m)
{
    for (uint32_t i = 0; i < m->n_peers; i++)
        if (!cluster_needed(m, m->peers[i].id))
            return &m->peers[i];
    return NULL;
}

/* Whether cluster_upsert(id) would find a slot. */
static bool cluster_has_room(member *m, uint64_t id)
{
    return cluster_find(m, id) || m->n_peers < CONFIG_MAX_MEMBERS || reusable_slot(m);
}

/* The record of id, created if missing. When the table is full, the slot of a
 * member that has left the configuration is reused (and, with txn, its stored
 * record deleted): without that, a cluster that had seen CONFIG_MAX_MEMBERS
 * distinct members could not record the address of a new one (found by the
 * nemesis: removing and re-adding members under new ids filled the table).
 * NULL when every slot holds a needed member. */
static peer_info *cluster_upsert(member *m, uint64_t id, MDB_txn *txn)
{
    peer_info *p = cluster_find(m, id);
    if (p)
        return p;
    if (m->n_peers == CONFIG_MAX_MEMBERS) {
        p = reusable_slot(m);
        if (!p)
            return NULL;
        if (txn && record_delete(txn, p->id) != 0)
            return NULL;
    } else {
        p = &m->peers[m->n_peers++];
    }
    memset(p, 0, sizeof(*p));
    p->id = id;
    return p;
}

static void be64(uint8_t *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
}

static uint64_t from_be64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return v;
}

/* A record: name NUL peer_url NUL client_url NUL. */
static int record_write(MDB_txn *txn, const peer_info *p)
{
    MDB_dbi dbi;
    if (mdb_dbi_open(txn, MEMBERS_DB, MDB_CREATE, &dbi) != 0)
        return -1;
    uint8_t k[8];
    be64(k, p->id);
    char v[3 * CONFIG_STR_MAX];
    size_t a = strlen(p->name) + 1, b = strlen(p->peer_url) + 1, c = strlen(p->client_url) + 1;
    memcpy(v, p->name, a);
    memcpy(v + a, p->peer_url, b);
    memcpy(v + a + b, p->client_url, c);
    MDB_val key = {8, k}, val = {a + b + c, v};
    return mdb_put(txn, dbi, &key, &val, 0) == 0 ? 0 : -1;
}

static void copy_field(char *dst, size_t cap, const char **src, const char *end)
{
    size_t n = strnlen(*src, (size_t)(end - *src));
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, *src, n);
    dst[n] = '\0';
    *src += strnlen(*src, (size_t)(end - *src)) + 1;
    if (*src > end)
        *src = end;
}

static int record_delete(MDB_txn *txn, uint64_t id)
{
    MDB_dbi dbi;
    if (mdb_dbi_open(txn, MEMBERS_DB, MDB_CREATE, &dbi) != 0)
        return -1;
    uint8_t k[8];
    be64(k, id);
    MDB_val key = {8, k};
    int rc = mdb_del(txn, dbi, &key, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : -1;
}

/* Reads the table from the store (over what --initial-cluster said): the
 * configuration's members first, then others while there is room. */
void cluster_load(member *m)
{
    MDB_env *env = mvcc_env(storage_mvcc(m->st));
    MDB_txn *txn;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
        return;
    MDB_dbi dbi;
    if (mdb_dbi_open(txn, MEMBERS_DB, 0, &dbi) != 0) {
        mdb_txn_abort(txn);
        return;
    }
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, dbi, &cur) == 0) {
        MDB_val k, v;
        for (int pass = 0; pass < 2; pass++) {
            for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
                 rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                if (k.mv_size != 8)
                    continue;
                uint64_t id = from_be64(k.mv_data);
                if (cluster_needed(m, id) != (pass == 0))
                    continue;
                if (pass == 1 && m->n_peers == CONFIG_MAX_MEMBERS && !cluster_find(m, id))
                    break; /* no room left for members that have left */
                peer_info *p = cluster_upsert(m, id, NULL);
                if (!p)
                    continue;
                const char *s = v.mv_data, *end = s + v.mv_size;
                copy_field(p->name, sizeof p->name, &s, end);
                copy_field(p->peer_url, sizeof p->peer_url, &s, end);
                copy_field(p->client_url, sizeof p->client_url, &s, end);
            }
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
}

/* A member our table does not know dialed us: it joined, or replaced members, while we
 * were away (our table is older than its). Raft answers whoever writes to it, but the
 * answers need an address: without one, a member whose every known peer has left could
 * never catch up, and the cluster might need its vote. So it becomes a peer of the
 * transport at the URL from its HELLO until our table knows it (cluster_sync_transport). */
void cluster_on_hello(void *ctx, uint64_t from, const char *url)
{
    member *m = ctx;
    if (m->failed || cluster_find(m, from))
        return; /* known: cluster_sync_transport keeps its connection as the table says */
    for (uint32_t i = 0; i < m->n_hello_peers; i++)
        if (m->hello_peers[i].id == from)
            return;
    if (m->n_hello_peers == CONFIG_MAX_MEMBERS || transport_has_peer(m->tr, from))
        return;
    cord_error e;
    if (transport_add_peer(m->tr, from, url, &e) != TRANSPORT_OK) {
        log_warn("member %016llx: member %016llx dialed in from %s: %s", (unsigned long long)m->id,
                 (unsigned long long)from, url, e.msg);
        return;
    }
    m->hello_peers[m->n_hello_peers++] = (struct hello_peer){.id = from};
    log_info("member %016llx: member %016llx, not in our member table, dialed in; answering it "
             "at %s",
             (unsigned long long)m->id, (unsigned long long)from, url);
}

/* Keeps the peers cluster_on_hello added until the table knows them, or until they
 * have been unreachable for 300 ticks (a member that left before our table knew it). */
static void sync_hello_peers(member *m)
{
    for (uint32_t i = 0; i < m->n_hello_peers;) {
        struct hello_peer *h = &m->hello_peers[i];
        bool drop = cluster_find(m, h->id) != NULL;
        if (!drop && transport_peer_connected(m->tr, h->id)) {
            h->down = false;
        } else if (!drop && !h->down) {
            h->down = true;
            h->down_since_tick = m->ticks;
        } else if (!drop && m->ticks - h->down_since_tick >= 300) {
            (void)transport_remove_peer(m->tr, h->id);
            drop = true;
        }
        if (drop)
            *h = m->hello_peers[--m->n_hello_peers];
        else
            i++;
    }
}

/* Keeps the transport's peers equal to the configuration's members (and those that dialed
 * in, for a while: cluster_on_hello). */
void cluster_sync_transport(member *m)
{
    if (m->n_hello_peers > 0)
        sync_hello_peers(m);
    const raft_conf *c = raft_get_conf(m->r);
    for (uint32_t i = 0; i < m->n_peers; i++) {
        peer_info *p = &m->peers[i];
        if (p->id == m->id || p->peer_url[0] == '\0')
            continue;
        bool in =
            c->n_voters == 0 || raft_conf_is_voter(c, p->id) || raft_conf_is_learner(c, p->id);
        bool has = transport_has_peer(m->tr, p->id);
        if (in && !has)
            (void)transport_add_peer(m->tr, p->id, p->peer_url, NULL);
        else if (!in && has && !raft_is_tracking(m->r, p->id))
            (void)transport_remove_peer(m->tr, p->id); /* it knows it is out, or is gone */
    }
    /* removed from the cluster: stop serving */
    bool self_in = raft_conf_is_voter(c, m->id) || raft_conf_is_learner(c, m->id);
    if (self_in)
        m->was_member = true;
    else if (m->was_member && c->n_voters > 0 && !m->failed) {
        log_warn("member %016llx: the member has been permanently removed from the cluster",
                 (unsigned long long)m->id);
        m->failed = true;
        m->removed = true;
    }
}

/* ------------------------------------------------------------- replies */

typedef struct member_list {
    Etcdserverpb__Member mem[CONFIG_MAX_MEMBERS];
    Etcdserverpb__Member *ptr[CONFIG_MAX_MEMBERS];
    char *peer[CONFIG_MAX_MEMBERS];
    char *client[CONFIG_MAX_MEMBERS];
    size_t n;
} member_list;

static void fill_member(member *m, peer_info *p, Etcdserverpb__Member *out, char **peer,
                        char **client)
{
    const raft_conf *c = raft_get_conf(m->r);
    Etcdserverpb__Member init = ETCDSERVERPB__MEMBER__INIT;
    *out = init;
    out->id = p->id;
    out->name = p->name;
    *peer = p->peer_url;
    if (p->peer_url[0]) {
        out->peerurls = peer;
        out->n_peerurls = 1;
    }
    *client = p->client_url;
    if (p->client_url[0]) {
        out->clienturls = client;
        out->n_clienturls = 1;
    }
    out->islearner = raft_conf_is_learner(c, p->id);
}

static void list_members(member *m, member_list *l)
{
    const raft_conf *c = raft_get_conf(m->r);
    l->n = 0;
    for (uint32_t i = 0; i < m->n_peers; i++) {
        peer_info *p = &m->peers[i];
        if (c->n_voters > 0 && !raft_conf_is_voter(c, p->id) && !raft_conf_is_learner(c, p->id))
            continue; /* removed, or added but not yet in the configuration */
        fill_member(m, p, &l->mem[l->n], &l->peer[l->n], &l->client[l->n]);
        l->ptr[l->n] = &l->mem[l->n];
        l->n++;
    }
}

/* Cluster responses carry no revision (etcd's cluster server leaves it out). */
static void header(member *m, Etcdserverpb__ResponseHeader *h)
{
    member_header_ids(m, &h->cluster_id, &h->member_id, &h->raft_term);
}

/* Answers the membership calls whose configuration change is now applied. */
void cluster_after_apply(member *m)
{
    const raft_conf *c = raft_get_conf(m->r);
    waiter *w = m->all;
    while (w) {
        waiter *next = w->next_all;
        if (w->state == W_CONF && !raft_conf_is_joint(c)) {
            uint64_t id = w->read_index;
            bool in = raft_conf_is_voter(c, id) || raft_conf_is_learner(c, id);
            bool done = false;
            member_list l;
            Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
            if (w->kind == REQ_MEMBER_ADD && in && cluster_find(m, id)) {
                done = true;
                if (w->call) {
                    list_members(m, &l);
                    header(m, &h);
                    Etcdserverpb__Member added;
                    char *pu, *cu;
                    fill_member(m, cluster_find(m, id), &added, &pu, &cu);
                    Etcdserverpb__MemberAddResponse r = ETCDSERVERPB__MEMBER_ADD_RESPONSE__INIT;
                    r.header = &h;
                    r.member = &added;
                    r.members = l.ptr;
                    r.n_members = l.n;
                    member_reply_pb(w->call, &r.base);
                }
            } else if (w->kind == REQ_MEMBER_REMOVE && !in) {
                done = true;
                if (w->call) {
                    list_members(m, &l);
                    header(m, &h);
                    Etcdserverpb__MemberRemoveResponse r =
                        ETCDSERVERPB__MEMBER_REMOVE_RESPONSE__INIT;
                    r.header = &h;
                    r.members = l.ptr;
                    r.n_members = l.n;
                    member_reply_pb(w->call, &r.base);
                }
            } else if (w->kind == REQ_MEMBER_PROMOTE && raft_conf_is_voter(c, id)) {
                done = true;
                if (w->call) {
                    list_members(m, &l);
                    header(m, &h);
                    Etcdserverpb__MemberPromoteResponse r =
                        ETCDSERVERPB__MEMBER_PROMOTE_RESPONSE__INIT;
                    r.header = &h;
                    r.members = l.ptr;
                    r.n_members = l.n;
                    member_reply_pb(w->call, &r.base);
                }
            }
            if (done) {
                w->call = NULL;
                member_waiter_release(m, w);
            }
        }
        w = next;
    }
}

/* ------------------------------------------------------------ applying */

int cluster_apply(member *m, mvcc_store *mv, uint8_t kind, const uint8_t *req, size_t len,
                  bool want_reply, int *status, const char **message, uint8_t **msg,
                  size_t *msg_len)
{
    Etcdserverpb__Member *rec = etcdserverpb__member__unpack(NULL, len, req);
    if (!rec)
        return 0;
    peer_info *p = rec->id ? cluster_upsert(m, rec->id, mvcc_batch_txn(mv)) : NULL;
    if (p) {
        if (kind == REQ_MEMBER_ATTR) {
            snprintf(p->name, sizeof p->name, "%s", rec->name ? rec->name : "");
            snprintf(p->client_url, sizeof p->client_url, "%s",
                     rec->n_clienturls ? rec->clienturls[0] : "");
            if (rec->id == m->id)
                m->published = true;
        } else if (rec->n_peerurls > 0) {
            snprintf(p->peer_url, sizeof p->peer_url, "%s", rec->peerurls[0]);
        }
        if (record_write(mvcc_batch_txn(mv), p) != 0) {
            etcdserverpb__member__free_unpacked(rec, NULL);
            return -1;
        }
        if (rec->id != m->id && kind == REQ_MEMBER_UPDATE && transport_has_peer(m->tr, rec->id)) {
            /* new address: reconnect there */
            (void)transport_remove_peer(m->tr, rec->id);
        }
    }
    etcdserverpb__member__free_unpacked(rec, NULL);
    if (want_reply) {
        if (!p) {
            *status = 5;
            *message = "etcdserver: member not found";
            return 0;
        }
        member_list l;
        list_members(m, &l);
        Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
        header(m, &h);
        Etcdserverpb__MemberUpdateResponse r = ETCDSERVERPB__MEMBER_UPDATE_RESPONSE__INIT;
        r.header = &h;
        r.members = l.ptr;
        r.n_members = l.n;
        if (member_pack(&r.base, msg, msg_len) != 0) {
            *status = 8;
            *message = "etcdserver: out of memory";
        }
    }
    return 0;
}

/* Proposes our own name and client URLs until they are applied (etcd's publish). */
void cluster_publish(member *m)
{
    if (m->published || raft_leader(m->r) == 0 || m->failed)
        return;
    if (m->ticks < m->next_publish_tick)
        return;
    m->next_publish_tick = m->ticks + 20;
    Etcdserverpb__Member rec = ETCDSERVERPB__MEMBER__INIT;
    rec.id = m->id;
    rec.name = m->cfg.name;
    char client[CONFIG_STR_MAX];
    snprintf(client, sizeof client, "%s", m->cfg.advertise_client_urls);
    char *comma = strchr(client, ',');
    if (comma)
        *comma = '\0';
    char *cp = client;
    rec.clienturls = &cp;
    rec.n_clienturls = 1;
    uint8_t buf[CONFIG_STR_MAX + 512];
    if (etcdserverpb__member__get_packed_size(&rec) > sizeof buf)
        return;
    size_t n = etcdserverpb__member__pack(&rec, buf);
    member_propose(m, NULL, REQ_MEMBER_ATTR, buf, n);
}

/* ------------------------------------------------------------- handlers */

/* What the leader's refusals of a membership change say: a gRPC status and one of etcd's
 * texts. A refusal travels through the log as these two bytes (REQ_MEMBER_FORWARD_ANSWER),
 * and replies keep a pointer to the text: static texts only. */
enum conf_text {
    T_NONE,
    T_NOT_LEADER,
    T_MALFORMED,
    T_BAD_URL,
    T_URL_EXISTS,
    T_STILL_LEAVING,
    T_UNHEALTHY,
    T_TOO_MANY,
    T_TOO_LARGE,
    T_NOT_FOUND,
    T_NOT_LEARNER,
    T_NOT_IN_SYNC,
    T_NOT_ENOUGH_STARTED,
    T_TOO_MANY_REQUESTS,
    T_TRANSFER,
    T_INVALID,
    N_CONF_TEXTS
};
static const char *const conf_texts[N_CONF_TEXTS] = {
    [T_NONE] = "",
    [T_NOT_LEADER] = "etcdserver: not leader",
    [T_MALFORMED] = "etcdserver: malformed request",
    [T_BAD_URL] = "etcdserver: invalid peer URL (want http://host:port)",
    [T_URL_EXISTS] = "etcdserver: Peer URLs already exists",
    [T_STILL_LEAVING] = "etcdserver: too many members (recently removed members are still "
                        "leaving; retry in a few seconds)",
    [T_UNHEALTHY] = "etcdserver: unhealthy cluster",
    [T_TOO_MANY] = "etcdserver: too many members",
    [T_TOO_LARGE] = "etcdserver: request is too large",
    [T_NOT_FOUND] = "etcdserver: member not found",
    [T_NOT_LEARNER] = "etcdserver: can only promote a learner member",
    [T_NOT_IN_SYNC] = "etcdserver: can only promote a learner member which is in sync with leader",
    [T_NOT_ENOUGH_STARTED] =
        "etcdserver: re-configuration failed due to not enough started members",
    [T_TOO_MANY_REQUESTS] = "etcdserver: too many requests",
    [T_TRANSFER] = "etcdserver: leadership transfer in progress",
    [T_INVALID] = "etcdserver: invalid membership change",
};

typedef struct conf_refusal {
    uint8_t code; /* gRPC status; 0: not refused */
    uint8_t text; /* enum conf_text */
} conf_refusal;

#define ACCEPTED         ((conf_refusal){0, T_NONE})
#define REFUSED(code, t) ((conf_refusal){(code), (t)})

static void reply_refusal(api_call *call, conf_refusal r)
{
    member_reply_error(call, r.code, conf_texts[r.text < N_CONF_TEXTS ? r.text : T_INVALID]);
}

static conf_refusal conf_error(int rc)
{
    switch (rc) {
    case RAFT_ECONFPENDING:
        return REFUSED(9, T_UNHEALTHY);
    case RAFT_ENOTLEADER:
        return REFUSED(14, T_NOT_LEADER);
    case RAFT_EBUSY:
        return REFUSED(8, T_TOO_MANY_REQUESTS);
    case RAFT_ETRANSFER:
        return REFUSED(14, T_TRANSFER);
    default:
        return REFUSED(3, T_INVALID);
    }
}

/* --strict-reconfig-check, as etcd's: a change must leave a quorum of the new
 * configuration among the voters this leader reaches (itself, and each voter whose
 * connection is up). Learners do not count and are never refused. */
static uint32_t voters_reached(member *m, const raft_conf *c)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->n_voters; i++)
        if (c->voters[i] == m->id || (m->tr && transport_peer_connected(m->tr, c->voters[i])))
            n++;
    return n;
}

static conf_refusal strict_refuses_add(member *m, const raft_conf *c)
{
    /* etcd asks for every voter: the newcomer is not running yet, and the quorum of
     * n + 1 voters is then at most one short of all n */
    if (!m->cfg.strict_reconfig_check)
        return ACCEPTED;
    uint32_t reached = voters_reached(m, c);
    if (reached == c->n_voters)
        return ACCEPTED;
    log_warn("member: refusing to add a voter: %u of %u voters reached (--strict-reconfig-check)",
             reached, c->n_voters);
    return REFUSED(14, T_UNHEALTHY);
}

static conf_refusal strict_refuses_remove(member *m, const raft_conf *c, raft_id id)
{
    if (!m->cfg.strict_reconfig_check || !raft_conf_is_voter(c, id))
        return ACCEPTED;
    if (id != m->id && !(m->tr && transport_peer_connected(m->tr, id)))
        return ACCEPTED; /* a voter that is down is no part of the quorum that runs */
    uint32_t reached = voters_reached(m, c);
    if (reached - 1 >= (c->n_voters - 1) / 2 + 1)
        return ACCEPTED;
    log_warn("member: refusing to remove voter %016llx: %u of %u voters reached "
             "(--strict-reconfig-check)",
             (unsigned long long)id, reached, c->n_voters);
    return REFUSED(14, T_UNHEALTHY);
}

static conf_refusal strict_refuses_promote(member *m, const raft_conf *c, raft_id id)
{
    if (!m->cfg.strict_reconfig_check)
        return ACCEPTED;
    uint32_t reached = voters_reached(m, c) + (m->tr && transport_peer_connected(m->tr, id));
    if (reached >= (c->n_voters + 1) / 2 + 1)
        return ACCEPTED;
    return REFUSED(9, T_NOT_ENOUGH_STARTED);
}

static void wait_conf(member *m, api_call *call, uint8_t kind, uint64_t id)
{
    waiter *w = member_waiter_new(m, call, kind, W_CONF);
    if (!w) {
        member_reply_error(call, 8, "etcdserver: too many requests");
        return;
    }
    w->read_index = id;
}

/* A MemberAdd request that decodes and names a peer URL we can dial (*out: the request, for
 * the caller to free). A follower checks this too, to refuse without a round trip. */
static conf_refusal add_request_check(const uint8_t *msg, size_t len,
                                      Etcdserverpb__MemberAddRequest **out)
{
    *out = etcdserverpb__member_add_request__unpack(NULL, len, msg);
    if (!*out)
        return REFUSED(3, T_MALFORMED);
    config_url u;
    if ((*out)->n_peerurls == 0 || config_url_parse((*out)->peerurls[0], &u) != 0)
        return REFUSED(3, T_BAD_URL);
    return ACCEPTED;
}

/* MemberAdd on the leader: the new member's record, then the configuration change. */
static conf_refusal decide_add(member *m, const raft_conf *c, Etcdserverpb__MemberAddRequest *rq,
                               uint64_t *id)
{
    *id = member_compute_id(rq->peerurls[0], m->cfg.initial_cluster_token);
    for (uint32_t i = 0; i < m->n_peers; i++)
        if (strcmp(m->peers[i].peer_url, rq->peerurls[0]) == 0 &&
            (raft_conf_is_voter(c, m->peers[i].id) || raft_conf_is_learner(c, m->peers[i].id)))
            return REFUSED(9, T_URL_EXISTS);
    if (!cluster_has_room(m, *id))
        return REFUSED(9, T_STILL_LEAVING); /* members removed moments ago are still told so */
    if (!rq->islearner) {
        conf_refusal r = strict_refuses_add(m, c);
        if (r.code)
            return r;
    }
    raft_conf target = *c;
    uint32_t *count = rq->islearner ? &target.n_learners : &target.n_voters;
    if (*count == RAFT_MAX_MEMBERS)
        return REFUSED(9, T_TOO_MANY);
    (rq->islearner ? target.learners : target.voters)[(*count)++] = *id;
    /* the address first, so that peers can dial it as soon as it votes */
    Etcdserverpb__Member rec = ETCDSERVERPB__MEMBER__INIT;
    rec.id = *id;
    rec.peerurls = rq->peerurls;
    rec.n_peerurls = rq->n_peerurls;
    rec.islearner = rq->islearner;
    uint8_t buf[8192];
    size_t n = etcdserverpb__member__get_packed_size(&rec);
    if (n > sizeof buf)
        return REFUSED(3, T_TOO_LARGE);
    etcdserverpb__member__pack(&rec, buf);
    /* The address goes into the leader's log just before the configuration
     * change, so a committed change always has its address (log matching).
     * The other order lost the address when the leader refused the record
     * under load (RAFT_EBUSY) after accepting the change: the cluster then had
     * a voter nobody could dial, and a retried add was rejected forever. A
     * record whose change is then refused stays unlisted and harmless. */
    int rc = member_propose_own(m, REQ_MEMBER_UPDATE, buf, n);
    if (rc == 0)
        rc = raft_propose_conf(m->r, &target);
    return rc ? conf_error(rc) : ACCEPTED;
}

/* MemberRemove on the leader: the configuration without `id`. */
static conf_refusal decide_remove(member *m, const raft_conf *c, raft_id id, raft_conf *target)
{
    if (!raft_conf_is_voter(c, id) && !raft_conf_is_learner(c, id))
        return REFUSED(5, T_NOT_FOUND);
    conf_refusal r = strict_refuses_remove(m, c, id);
    if (r.code)
        return r;
    memset(target, 0, sizeof *target);
    for (uint32_t i = 0; i < c->n_voters; i++)
        if (c->voters[i] != id)
            target->voters[target->n_voters++] = c->voters[i];
    for (uint32_t i = 0; i < c->n_learners; i++)
        if (c->learners[i] != id)
            target->learners[target->n_learners++] = c->learners[i];
    return ACCEPTED;
}

/* MemberPromote on the leader: the configuration with learner `id` a voter. */
static conf_refusal decide_promote(member *m, const raft_conf *c, raft_id id, raft_conf *target)
{
    if (!raft_conf_is_learner(c, id))
        return raft_conf_is_voter(c, id) ? REFUSED(9, T_NOT_LEARNER) : REFUSED(5, T_NOT_FOUND);
    raft_status st;
    raft_get_status(m->r, &st);
    if (raft_match_index(m->r, id) * 10 < st.last_index * 9)
        return REFUSED(9, T_NOT_IN_SYNC);
    conf_refusal r = strict_refuses_promote(m, c, id);
    if (r.code)
        return r;
    if (c->n_voters == RAFT_MAX_MEMBERS)
        return REFUSED(9, T_TOO_MANY);
    *target = *c;
    target->n_learners = 0;
    for (uint32_t i = 0; i < c->n_learners; i++)
        if (c->learners[i] != id)
            target->learners[target->n_learners++] = c->learners[i];
    target->voters[target->n_voters++] = id;
    return ACCEPTED;
}

/* The leader's part of MemberAdd, MemberRemove and MemberPromote: checks the request
 * (`kind` says which, `msg` is the request message) and proposes the change; *id is the
 * member to wait for. */
static conf_refusal conf_decide(member *m, uint8_t kind, const uint8_t *msg, size_t len,
                                uint64_t *id)
{
    if (raft_leader(m->r) != m->id)
        return REFUSED(14, T_NOT_LEADER);
    const raft_conf *c = raft_get_conf(m->r);
    if (kind == REQ_MEMBER_ADD) {
        Etcdserverpb__MemberAddRequest *rq;
        conf_refusal r = add_request_check(msg, len, &rq);
        if (!r.code)
            r = decide_add(m, c, rq, id);
        if (rq)
            etcdserverpb__member_add_request__free_unpacked(rq, NULL);
        return r;
    }
    if (kind == REQ_MEMBER_REMOVE) {
        Etcdserverpb__MemberRemoveRequest *rq =
            etcdserverpb__member_remove_request__unpack(NULL, len, msg);
        if (!rq)
            return REFUSED(3, T_MALFORMED);
        *id = rq->id;
        etcdserverpb__member_remove_request__free_unpacked(rq, NULL);
    } else {
        Etcdserverpb__MemberPromoteRequest *rq =
            etcdserverpb__member_promote_request__unpack(NULL, len, msg);
        if (!rq)
            return REFUSED(3, T_MALFORMED);
        *id = rq->id;
        etcdserverpb__member_promote_request__free_unpacked(rq, NULL);
    }
    raft_conf target;
    conf_refusal r = kind == REQ_MEMBER_REMOVE ? decide_remove(m, c, *id, &target)
                                               : decide_promote(m, c, *id, &target);
    if (r.code)
        return r;
    int rc = raft_propose_conf(m->r, &target);
    return rc ? conf_error(rc) : ACCEPTED;
}

/* A follower does not change the configuration itself: it carries the request to the leader
 * it knows through the log (REQ_MEMBER_FORWARD: kind, that leader's id, the request). That
 * leader, if it still leads when it applies the entry, decides as for its own client and
 * answers through the log (REQ_MEMBER_FORWARD_ANSWER), after the change it proposed. No other
 * member acts on the entry, so a change of leader in between leaves it unanswered: the
 * asker times out, as etcd's does when its proposal is lost. */
#define FORWARD_HEAD 9                       /* kind, leader id */
#define ANSWER_LEN   (8 + 8 + 1 + 1 + 1 + 8) /* origin, request id, kind, status, text, id */

static void on_conf_call(api_call *call, const uint8_t *msg, size_t len, member *m, uint8_t kind)
{
    uint64_t leader = raft_leader(m->r);
    if (leader == m->id) {
        uint64_t id = 0;
        conf_refusal r = conf_decide(m, kind, msg, len, &id);
        if (r.code)
            reply_refusal(call, r);
        else
            wait_conf(m, call, kind, id);
        return;
    }
    if (leader == 0) {
        member_reply_error(call, 14, "etcdserver: no leader");
        return;
    }
    if (kind == REQ_MEMBER_ADD) {
        Etcdserverpb__MemberAddRequest *rq;
        conf_refusal r = add_request_check(msg, len, &rq);
        if (rq)
            etcdserverpb__member_add_request__free_unpacked(rq, NULL);
        if (r.code) {
            reply_refusal(call, r);
            return;
        }
    }
    uint8_t *fw = malloc(FORWARD_HEAD + len);
    if (!fw) {
        reply_refusal(call, REFUSED(8, T_TOO_MANY_REQUESTS));
        return;
    }
    fw[0] = kind;
    bytes_put64(fw + 1, leader);
    if (len)
        memcpy(fw + FORWARD_HEAD, msg, len);
    member_propose(m, call, REQ_MEMBER_FORWARD, fw, FORWARD_HEAD + len);
    free(fw);
}

/* The leader decides a forwarded request (origin, request id, REQ_MEMBER_FORWARD payload)
 * once the batch is applied, and proposes its answer after the change. */
static void decide_forwarded(member *m, const uint8_t *q, size_t len)
{
    uint8_t kind = q[16];
    if (kind != REQ_MEMBER_ADD && kind != REQ_MEMBER_REMOVE && kind != REQ_MEMBER_PROMOTE)
        return;
    uint64_t id = 0;
    conf_refusal r = conf_decide(m, kind, q + 16 + FORWARD_HEAD, len - 16 - FORWARD_HEAD, &id);
    uint8_t a[ANSWER_LEN];
    memcpy(a, q, 16); /* origin, request id */
    a[16] = kind;
    a[17] = r.code;
    a[18] = r.text;
    bytes_put64(a + 19, id);
    (void)member_propose_own(m, REQ_MEMBER_FORWARD_ANSWER, a, sizeof a);
}

/* Applying REQ_MEMBER_FORWARD: the leader it names decides once the batch is applied
 * (decide_forwarded). Never answered here (*status -1). */
void cluster_apply_forward(member *m, const uint8_t *req, size_t len, uint64_t origin,
                           uint64_t req_id, int *status)
{
    *status = -1;
    if (len < FORWARD_HEAD || bytes_get64(req + 1) != m->id || raft_leader(m->r) != m->id)
        return;
    uint8_t *q = malloc(16 + len);
    if (!q)
        return; /* the asker times out */
    bytes_put64(q, origin);
    bytes_put64(q + 8, req_id);
    memcpy(q + 16, req, len);
    member_after_apply(m, decide_forwarded, q, 16 + len);
    free(q);
}

/* Applying REQ_MEMBER_FORWARD_ANSWER: the asker's call gets the refusal, or waits for the
 * configuration as the leader's own caller would (the change is before this in the log). */
void cluster_apply_forward_answer(member *m, const uint8_t *a, size_t len)
{
    if (len != ANSWER_LEN || bytes_get64(a) != m->id)
        return;
    waiter *w = member_waiter_find(m, bytes_get64(a + 8));
    if (!w || w->kind != REQ_MEMBER_FORWARD || w->state != W_PROPOSED)
        return;
    if (a[17] != 0) {
        uint8_t t = a[18] < N_CONF_TEXTS ? a[18] : T_INVALID;
        member_reply_later(m, w->id, a[17], conf_texts[t], NULL, 0);
        return;
    }
    if (a[16] != REQ_MEMBER_ADD && a[16] != REQ_MEMBER_REMOVE && a[16] != REQ_MEMBER_PROMOTE)
        return;
    w->kind = a[16];
    w->state = W_CONF;
    w->read_index = bytes_get64(a + 19);
}

static void on_member_add(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    on_conf_call(call, msg, len, ud, REQ_MEMBER_ADD);
}

static void on_member_remove(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    on_conf_call(call, msg, len, ud, REQ_MEMBER_REMOVE);
}

static void on_member_promote(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    on_conf_call(call, msg, len, ud, REQ_MEMBER_PROMOTE);
}

static void on_member_update(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    Etcdserverpb__MemberUpdateRequest *rq =
        etcdserverpb__member_update_request__unpack(NULL, len, msg);
    if (!rq) {
        member_reply_error(call, 3, "etcdserver: malformed request");
        return;
    }
    config_url u;
    bool ok = rq->n_peerurls > 0 && config_url_parse(rq->peerurls[0], &u) == 0;
    bool known = cluster_find(m, rq->id) != NULL;
    Etcdserverpb__Member rec = ETCDSERVERPB__MEMBER__INIT;
    rec.id = rq->id;
    rec.peerurls = rq->peerurls;
    rec.n_peerurls = rq->n_peerurls;
    uint8_t buf[8192];
    size_t n = etcdserverpb__member__get_packed_size(&rec);
    if (ok && known && n <= sizeof buf)
        etcdserverpb__member__pack(&rec, buf);
    etcdserverpb__member_update_request__free_unpacked(rq, NULL);
    if (!ok || n > sizeof buf) {
        member_reply_error(call, 3, "etcdserver: invalid peer URL (want http://host:port)");
        return;
    }
    if (!known) {
        member_reply_error(call, 5, "etcdserver: member not found");
        return;
    }
    member_propose(m, call, REQ_MEMBER_UPDATE, buf, n);
}

static void on_member_list(api_call *call, const uint8_t *msg, size_t len, void *ud)
{
    member *m = ud;
    Etcdserverpb__MemberListRequest *rq = etcdserverpb__member_list_request__unpack(NULL, len, msg);
    if (!rq) {
        member_reply_error(call, 3, "etcdserver: malformed request");
        return;
    }
    etcdserverpb__member_list_request__free_unpacked(rq, NULL);
    member_list l;
    list_members(m, &l);
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    header(m, &h);
    Etcdserverpb__MemberListResponse r = ETCDSERVERPB__MEMBER_LIST_RESPONSE__INIT;
    r.header = &h;
    r.members = l.ptr;
    r.n_members = l.n;
    member_reply_pb(call, &r.base);
}

const api_method cluster_methods[] = {
    {"/etcdserverpb.Cluster/MemberAdd", on_member_add, NULL, NULL, NULL},
    {"/etcdserverpb.Cluster/MemberRemove", on_member_remove, NULL, NULL, NULL},
    {"/etcdserverpb.Cluster/MemberUpdate", on_member_update, NULL, NULL, NULL},
    {"/etcdserverpb.Cluster/MemberPromote", on_member_promote, NULL, NULL, NULL},
    {"/etcdserverpb.Cluster/MemberList", on_member_list, NULL, NULL, NULL},
};
const size_t cluster_n_methods = sizeof cluster_methods / sizeof cluster_methods[0];
