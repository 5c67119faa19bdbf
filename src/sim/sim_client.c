/*
 * sim_client.c: simulated clients and their history.
 *
 * Each client runs one operation at a time against a member of its choice
 * (often the same one again): a write, a delete or a compare-and-set goes
 * through raft_propose (a follower forwards it) and completes when that
 * member applies the entry carrying the operation's unique request id; a
 * read goes through raft_read_index and is served from the member's state
 * once its applied index reaches the read point. An operation ends ok, fail
 * (certainly not executed: refused, or the member was down) or unknown
 * (timed out, or the member crashed while it was pending). The history is
 * checked for linearizability per key with lincheck at the end of the run.
 *
 * Request ids are never reused, not even for retries, so an entry applied
 * at two different indexes is caught (duplicate-apply) rather than hidden.
 */
#include "sim/sim.h"

#include <stdlib.h>
#include <string.h>

sim_op *sim_op_get(sim *s, uint64_t id)
{
    return id >= 1 && id <= s->n_ops ? &s->ops[id - 1] : NULL;
}

sim_op *sim_op_new(sim *s, uint32_t client, uint8_t kind, uint8_t key)
{
    if (s->n_ops == s->cap_ops) {
        size_t ncap = s->cap_ops ? s->cap_ops * 2 : 1024;
        sim_op *p = realloc(s->ops, ncap * sizeof(*p));
        if (!p)
            abort();
        s->ops = p;
        s->cap_ops = ncap;
    }
    sim_op *op = &s->ops[s->n_ops++];
    memset(op, 0, sizeof(*op));
    op->id = s->n_ops;
    op->client = client;
    op->kind = kind;
    op->key = key;
    op->state = SIM_OP_PENDING;
    op->status = LINCHECK_STATUS_UNKNOWN;
    op->start = s->now;
    op->end = LINCHECK_TIME_NONE;
    if (client != SIM_CLIENT_PROBE)
        s->st.ops++;
    return op;
}

static void op_finish(sim *s, sim_op *op, uint8_t status)
{
    op->state = SIM_OP_DONE;
    op->status = status;
    op->end = status == LINCHECK_STATUS_UNKNOWN ? LINCHECK_TIME_NONE : s->now;
    sim_trace(s, "op-done", op->slot, op->id, status,
              op->kind == LINCHECK_CAS ? op->cas_result : op->has_value);
    if (op->client == SIM_CLIENT_PROBE)
        return;
    switch (status) {
    case LINCHECK_STATUS_OK:
        s->st.ops_ok++;
        break;
    case LINCHECK_STATUS_FAIL:
        s->st.ops_fail++;
        break;
    default:
        s->st.ops_unknown++;
        break;
    }
    sim_client *cl = &s->clients[op->client];
    if (status != LINCHECK_STATUS_OK) /* try another member next time */
        cl->sticky_slot = (uint32_t)sim_rng_below(&s->rng, s->n_slots);
    if (status == LINCHECK_STATUS_OK && op->key < SIM_MAX_KEYS) {
        bool present = op->kind == LINCHECK_READ     ? op->has_value
                       : op->kind == LINCHECK_DELETE ? false
                       : op->kind == LINCHECK_CAS    ? (op->cas_result || cl->seen_present[op->key])
                                                     : true;
        bool update = op->kind != LINCHECK_CAS || op->cas_result;
        if (update) {
            cl->seen_present[op->key] = present;
            cl->seen_len[op->key] = present ? op->value_len : 0;
            if (present)
                memcpy(cl->seen[op->key], op->value, op->value_len);
        }
    }
    if (cl->cur_op == op->id) {
        cl->cur_op = 0;
        sim_time think = sim_rng_range(&s->rng, 0, s->prof.think_max_us);
        if (status != LINCHECK_STATUS_OK)
            think += sim_rng_range(&s->rng, 5 * SIM_MS, 50 * SIM_MS); /* back off */
        sim_schedule(s, s->now + think, SIM_EV_CLIENT, 0, 0, op->client);
    }
}

void sim_clients_start(sim *s)
{
    for (uint32_t c = 0; c < s->prof.n_clients; c++) {
        sim_client *cl = &s->clients[c];
        memset(cl, 0, sizeof(*cl));
        cl->id = c;
        cl->sticky_slot = (uint32_t)sim_rng_below(&s->rng, s->n_slots);
        sim_schedule(s, s->now + sim_rng_range(&s->rng, 0, 20 * SIM_MS), SIM_EV_CLIENT, 0, 0, c);
    }
}

static uint32_t pick_slot(sim *s, sim_client *cl)
{
    if (s->stale_leader_reads && sim_rng_chance(&s->rng, 600000) &&
        s->m[s->stale_leader_slot].state != SIM_SLOT_EMPTY)
        return s->stale_leader_slot;
    if (s->m[cl->sticky_slot].state != SIM_SLOT_EMPTY &&
        sim_rng_chance(&s->rng, s->prof.sticky_pct * 10000))
        return cl->sticky_slot;
    uint32_t cand[SIM_MAX_NODES], n = 0;
    for (uint32_t k = 0; k < s->n_slots; k++)
        if (s->m[k].state != SIM_SLOT_EMPTY)
            cand[n++] = k;
    if (n == 0)
        return UINT32_MAX;
    return cand[sim_rng_below(&s->rng, n)];
}

void sim_client_event(sim *s, uint32_t client)
{
    if (s->phase == SIM_PHASE_DONE)
        return;
    sim_client *cl = &s->clients[client];
    if (cl->cur_op != 0)
        return;
    uint32_t slot = pick_slot(s, cl);
    if (slot == UINT32_MAX) {
        sim_schedule(s, s->now + 10 * SIM_MS, SIM_EV_CLIENT, 0, 0, client);
        return;
    }
    const sim_profile *p = &s->prof;
    uint32_t r = (uint32_t)sim_rng_below(&s->rng, 100);
    uint8_t kind = r < p->read_pct                                ? LINCHECK_READ
                   : r < p->read_pct + p->cas_pct                 ? LINCHECK_CAS
                   : r < p->read_pct + p->cas_pct + p->delete_pct ? LINCHECK_DELETE
                                                                  : LINCHECK_WRITE;
    uint8_t key = (uint8_t)sim_rng_below(&s->rng, p->n_keys);
    sim_op *op = sim_op_new(s, client, kind, key);
    if (kind == LINCHECK_WRITE || kind == LINCHECK_CAS) {
        op->value_len =
            (uint8_t)snprintf(op->value, sizeof(op->value), "v%llu", (unsigned long long)op->id);
        op->has_value = true;
    }
    if (kind == LINCHECK_CAS) {
        if (cl->seen_present[key] && sim_rng_chance(&s->rng, 750000)) {
            op->has_expect = true;
            op->expect_len = cl->seen_len[key];
            memcpy(op->expect, cl->seen[key], op->expect_len);
        } else if (sim_rng_chance(&s->rng, 500000) && op->id > 1) {
            /* some earlier value: usually stale, so the compare fails */
            op->has_expect = true;
            op->expect_len =
                (uint8_t)snprintf(op->expect, sizeof(op->expect), "v%llu",
                                  (unsigned long long)sim_rng_range(&s->rng, 1, op->id - 1));
        }
    }
    cl->cur_op = op->id;
    cl->sticky_slot = slot;
    op->slot = slot;
    sim_trace(s, "op-invoke", slot, op->id, ((uint64_t)kind << 8) | key, client);
    sim_schedule(s, s->now + sim_rng_range(&s->rng, 50, 500), SIM_EV_REQUEST, slot, 0, op->id);
    sim_schedule(s, s->now + p->client_timeout_us, SIM_EV_CLIENT_TIMEOUT, 0, 0, op->id);
}

void sim_client_request(sim *s, uint32_t slot, uint64_t op_id)
{
    sim_op *op = sim_op_get(s, op_id);
    if (!op || op->state != SIM_OP_PENDING)
        return;
    sim_member *mb = &s->m[slot];
    if (mb->state != SIM_SLOT_UP) {
        op_finish(s, op, LINCHECK_STATUS_FAIL); /* connection refused */
        return;
    }
    op->slot = slot;
    op->inc = mb->inc;
    op->sent = true;
    int rc;
    if (op->kind == LINCHECK_READ) {
        rc = raft_read_index(mb->r, op->id);
    } else {
        sim_cmd c;
        memset(&c, 0, sizeof(c));
        c.req = op->id;
        c.kind = op->kind;
        c.key = op->key;
        c.value_len = op->value_len;
        memcpy(c.value, op->value, op->value_len);
        c.has_expect = op->has_expect;
        c.expect_len = op->expect_len;
        memcpy(c.expect, op->expect, op->expect_len);
        uint8_t buf[SIM_CMD_MAX_BYTES];
        size_t len = sim_cmd_encode(&c, buf);
        rc = raft_propose(mb->r, buf, (uint32_t)len);
    }
    sim_trace(s, "op-request", slot, op->id, (uint64_t)(int64_t)rc, mb->id);
    if (rc != 0)
        op_finish(s, op, LINCHECK_STATUS_FAIL);
    sim_member_drive(s, mb);
}

void sim_client_timeout(sim *s, uint64_t op_id)
{
    sim_op *op = sim_op_get(s, op_id);
    if (op && op->state == SIM_OP_PENDING)
        op_finish(s, op, LINCHECK_STATUS_UNKNOWN);
}

static bool pending_at(const sim_op *op, const sim_member *mb)
{
    return op->state == SIM_OP_PENDING && op->sent && op->slot == mb->slot && op->inc == mb->inc;
}

void sim_client_applied(sim *s, sim_member *mb, const sim_cmd *c, uint64_t index, bool cas_ok)
{
    sim_op *op = sim_op_get(s, c->req);
    if (!op || op->kind != c->kind || op->key != c->key || op->value_len != c->value_len ||
        memcmp(op->value, c->value, c->value_len) != 0) {
        sim_fail(s, "corrupt-entry",
                 "member %llu applies at index %llu a command (request %llu) no client sent",
                 (unsigned long long)mb->id, (unsigned long long)index, (unsigned long long)c->req);
        return;
    }
    if (op->applied_index == 0) {
        op->applied_index = index;
    } else if (op->applied_index != index) {
        sim_fail(s, "duplicate-apply",
                 "request %llu (client %u) is applied at index %llu and again at index %llu "
                 "(member %llu)",
                 (unsigned long long)op->id, op->client, (unsigned long long)op->applied_index,
                 (unsigned long long)index, (unsigned long long)mb->id);
        return;
    }
    if (pending_at(op, mb) && op->kind != LINCHECK_READ && op->client != SIM_CLIENT_PROBE) {
        op->cas_result = cas_ok;
        op_finish(s, op, LINCHECK_STATUS_OK);
    }
}

void sim_client_read_ready(sim *s, sim_member *mb, uint64_t ctx, uint64_t index)
{
    sim_op *op = sim_op_get(s, ctx);
    if (!op || op->kind != LINCHECK_READ || !pending_at(op, mb) || op->read_index_known)
        return;
    op->read_index_known = true;
    op->read_index = index;
    sim_trace(s, "read-index", mb->slot, op->id, index, mb->applied);
}

void sim_client_read_failed(sim *s, sim_member *mb, uint64_t ctx)
{
    sim_op *op = sim_op_get(s, ctx);
    if (!op || op->kind != LINCHECK_READ || !pending_at(op, mb))
        return;
    op_finish(s, op, LINCHECK_STATUS_FAIL);
}

void sim_client_serve_reads(sim *s, sim_member *mb)
{
    for (uint32_t c = 0; c < s->prof.n_clients; c++) {
        sim_op *op = sim_op_get(s, s->clients[c].cur_op);
        if (!op || op->kind != LINCHECK_READ || !pending_at(op, mb) || !op->read_index_known ||
            mb->applied < op->read_index)
            continue;
        op->has_value = mb->kv.present[op->key];
        op->value_len = op->has_value ? mb->kv.len[op->key] : 0;
        memcpy(op->value, mb->kv.val[op->key], op->value_len);
        op_finish(s, op, LINCHECK_STATUS_OK);
    }
}

void sim_client_member_lost(sim *s, sim_member *mb)
{
    for (uint32_t c = 0; c < s->prof.n_clients; c++) {
        sim_op *op = sim_op_get(s, s->clients[c].cur_op);
        if (op && pending_at(op, mb))
            op_finish(s, op, LINCHECK_STATUS_UNKNOWN);
    }
}

bool sim_client_check_history(sim *s)
{
    lincheck_history *h = lincheck_history_new();
    if (!h)
        abort();
    char keys[SIM_N_KEYS][16];
    for (unsigned k = 0; k < SIM_N_KEYS; k++)
        snprintf(keys[k], sizeof(keys[k]), "k%u", k);
    for (size_t i = 0; i < s->n_ops; i++) {
        const sim_op *op = &s->ops[i];
        if (op->client == SIM_CLIENT_PROBE)
            continue;
        lincheck_op lo;
        memset(&lo, 0, sizeof(lo));
        lo.id = op->id;
        lo.client = op->client;
        lo.kind = (lincheck_kind)op->kind;
        lo.status =
            op->state == SIM_OP_PENDING ? LINCHECK_STATUS_UNKNOWN : (lincheck_status)op->status;
        lo.key = keys[op->key];
        lo.key_len = strlen(keys[op->key]);
        if (op->kind == LINCHECK_READ) {
            lo.value = op->has_value ? op->value : NULL;
            lo.value_len = op->has_value ? op->value_len : 0;
        } else if (op->kind != LINCHECK_DELETE) {
            lo.value = op->value;
            lo.value_len = op->value_len;
        }
        if (op->kind == LINCHECK_CAS) {
            lo.expect = op->has_expect ? op->expect : NULL;
            lo.expect_len = op->has_expect ? op->expect_len : 0;
            lo.cas_result = op->cas_result;
        }
        lo.start = op->start;
        lo.end = lo.status == LINCHECK_STATUS_OK ? op->end : LINCHECK_TIME_NONE;
        int rc = lincheck_history_add(h, &lo);
        if (rc != 0) {
            sim_fail(s, "history", "lincheck refused operation %llu: %s",
                     (unsigned long long)op->id, lincheck_strerror(rc));
            lincheck_history_free(h);
            return false;
        }
    }
    lincheck_options opt = {.max_steps_per_key = 20000000ull, .max_memo_entries_per_key = 0};
    lincheck_result res;
    int rc = lincheck_check(h, &opt, &res);
    bool ok = true;
    if (rc != 0) {
        sim_fail(s, "linearizability", "lincheck failed: %s", lincheck_strerror(rc));
        ok = false;
    } else if (res.verdict == LINCHECK_VIOLATION) {
        sim_fail(s, "linearizability", "key %.*s, operation %llu: %s", (int)res.key_len, res.key,
                 (unsigned long long)res.op_id, res.explanation);
        ok = false;
    } else if (res.verdict == LINCHECK_UNKNOWN) {
        sim_fail(s, "linearizability",
                 "inconclusive: the checker hit its search limit on key %.*s (%s)",
                 (int)res.key_len, res.key, res.explanation);
        ok = false;
    }
    lincheck_history_free(h);
    return ok;
}
