/*
 * lincheck.c: the per-key WGL search and its explanations (see lincheck.h).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lincheck/lincheck.h"
#include "lincheck/lincheck_internal.h"

#define LC_NONE             UINT32_MAX       /* "no event" in the search's linked list */
#define LC_BOTTOM           UINT32_MAX       /* register value: one nobody can observe */
#define LC_NO_CHAIN         (UINT32_MAX - 1) /* see lc_may_step */
#define LC_STATES_SHOWN     8                /* values listed in a violation's explanation */
#define LC_CONCURRENT_SHOWN 10
#define LC_PRIOR_SHOWN      3
#define LC_VALUE_SHOWN      48 /* bytes of a value printed before "..." */
#define LC_MEMO_FULL        2  /* lc_memo_visit: the memo limit was reached */
#define LC_POOL_WORDS       8  /* counter words allowed per memo entry, on average */

/* ---------------------------------------------------------------------- */
/* Explanations: a bounded text buffer                                     */

typedef struct lc_text {
    char *buf;
    size_t cap;
    size_t len;
} lc_text;

__attribute__((format(printf, 2, 3))) static void lc_text_add(lc_text *t, const char *fmt, ...)
{
    if (t->len + 1 >= t->cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= t->cap - t->len) {
        t->len = t->cap - 1;
        if (t->cap >= 4) {
            memcpy(t->buf + t->cap - 4, "...", 4);
        }
        return;
    }
    t->len += (size_t)n;
}

static void lc_text_value(lc_text *t, const lincheck_history *h, uint32_t id)
{
    if (id == 0) {
        lc_text_add(t, "absent");
        return;
    }
    if (id == LC_BOTTOM) {
        lc_text_add(t, "(a value from an unknown-outcome write that nobody read)");
        return;
    }
    size_t len;
    const char *p = lincheck_history_string(h, id, &len);
    lc_text_add(t, "\"");
    size_t shown = len < LC_VALUE_SHOWN ? len : LC_VALUE_SHOWN;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') {
            lc_text_add(t, "\\%c", c);
        } else if (c < 0x20 || c == 0x7f) {
            lc_text_add(t, "\\u%04x", c);
        } else {
            lc_text_add(t, "%c", c);
        }
    }
    lc_text_add(t, shown < len ? "\"...(%zu bytes)" : "\"", len);
}

static void lc_text_time(lc_text *t, uint64_t v)
{
    if (v == LC_INF) {
        lc_text_add(t, "?");
    } else {
        lc_text_add(t, "%llu", (unsigned long long)v);
    }
}

static const char *const lc_status_name[] = {"ok", "fail", "unknown"};

static void lc_text_op(lc_text *t, const lincheck_history *h, const lc_op *o)
{
    lc_text_add(t, "id=%llu client=%llu ", (unsigned long long)o->id,
                (unsigned long long)o->client);
    switch (o->kind) {
    case LINCHECK_READ:
        lc_text_add(t, "read -> ");
        if (o->status == LINCHECK_STATUS_OK) {
            lc_text_value(t, h, o->value);
        } else {
            lc_text_add(t, "?");
        }
        break;
    case LINCHECK_WRITE:
        lc_text_add(t, "write ");
        lc_text_value(t, h, o->value);
        break;
    case LINCHECK_CAS:
        lc_text_add(t, "cas ");
        lc_text_value(t, h, o->expect);
        lc_text_add(t, " -> ");
        lc_text_value(t, h, o->value);
        if (o->status == LINCHECK_STATUS_OK) {
            lc_text_add(t, o->cas_result ? " swapped" : " compare-failed");
        }
        break;
    default:
        lc_text_add(t, "delete");
        break;
    }
    lc_text_add(t, " [");
    lc_text_time(t, o->start);
    lc_text_add(t, ", ");
    lc_text_time(t, o->end);
    lc_text_add(t, "] %s", lc_status_name[o->status]);
}

/* ---------------------------------------------------------------------- */
/* The search                                                              */

/* One operation of the key under check, after simplification. */
typedef struct lc_kop {
    uint32_t op; /* index into history ops */
    uint32_t value;
    uint32_t expect;
    uint8_t kind;
    bool unknown; /* may happen any time after start, or never */
    bool cas_result;
    uint32_t ret_event; /* ok only: index of its return event */
    uint32_t cls;       /* unknown only: its class of interchangeable operations */
    uint64_t start;
    uint64_t end; /* LC_INF when unknown */
} lc_kop;

typedef struct lc_event {
    uint64_t time;
    uint32_t kop;
    uint8_t is_return;
} lc_event;

/* One linearized operation on the search stack, with what undoing it needs. */
typedef struct lc_frame {
    uint32_t item;     /* ok: its call event (lifted from the list); unknown: its kop */
    uint32_t state;    /* register value before it */
    uint32_t chain;    /* chain value before it (see lc_may_step) */
    uint32_t ucur;     /* unknown: the candidate cursor that chose it */
    uint64_t ret_time; /* unknown: time of the return that bounded the candidates */
    bool unknown;
} lc_frame;

/* Unknown operations that are interchangeable (see lc_classify). */
typedef struct lc_class {
    uint32_t first; /* its operations are ukeys[first .. first + size), in call order */
    uint32_t size;
    uint32_t lin;    /* how many of them (always the first ones) are linearized */
    uint32_t expect; /* cas classes: the expected value */
} lc_class;

/* Sort key grouping unknown operations into classes (see lc_classify). */
typedef struct lc_ukey {
    uint32_t kind; /* 0: sets the value (write, delete); 1: cas */
    uint32_t value;
    uint32_t expect;
    uint32_t kop;
    uint64_t start;
} lc_ukey;

typedef struct lc_key128 {
    uint64_t a;
    uint64_t b;
} lc_key128;

/* A memo slot: a configuration's key, (0, 0) when the slot is empty, and
 * the list of set-class counter vectors seen with it (see lc_memo_visit). */
typedef struct lc_memo_slot {
    uint64_t a;
    uint64_t b;
    uint32_t head; /* into the pool; LC_NONE when empty */
} lc_memo_slot;

/* Scratch memory for one lincheck_check() call, reused across keys. */
typedef struct lc_ctx {
    const lincheck_history *h;
    uint64_t max_steps;
    uint64_t max_memo;

    /* grouping of history ops by key */
    uint32_t *key_first; /* key ids in order of first appearance */
    size_t keys_len;
    size_t *key_start; /* per string id: offset into by_key; size strs_len + 1 */
    uint32_t *by_key;  /* op indices grouped by key, in history order */

    /* per value id facts, for the simplification pass (reset per key) */
    uint32_t *writers;      /* non-failed writes/cas setting this value */
    uint64_t *min_obs_end;  /* earliest end of an ok read / swapped cas seeing it; LC_INF none */
    uint64_t *max_read_end; /* 1 + latest end of an ok read of it; 0 none */
    uint64_t *max_exp_end;  /* 1 + latest end of a cas expecting it (LC_INF unknown); 0 none */

    lc_kop *kops;
    size_t kops_cap;
    lc_event *events;
    size_t events_cap;
    uint32_t *next; /* linked list over events, plus a head sentinel */
    size_t next_cap;
    uint32_t *prev;
    size_t prev_cap;
    lc_frame *stack;
    size_t stack_cap;
    lc_ukey *ukeys;
    size_t ukeys_cap;
    lc_class *classes; /* write/delete classes first (n_set), then cas by expect */
    size_t classes_cap;
    uint32_t n_classes;
    uint32_t n_set;

    lc_memo_slot *memo;
    size_t memo_cap;     /* slots in use for this key (power of two) */
    size_t memo_alloc;   /* slots allocated */
    size_t memo_len;     /* slots filled */
    size_t memo_entries; /* configurations stored (what max_memo bounds) */
    uint32_t *pool;      /* nodes: next, then n_set counters */
    size_t pool_len;
    size_t pool_cap;

    /* diagnostics of the key under check */
    uint32_t best_event; /* the furthest return the search was stopped at */
    uint32_t best_states[LC_STATES_SHOWN];
    size_t best_states_len;
} lc_ctx;

static uint64_t lc_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull; /* splitmix64 */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Zobrist key of "operation i is linearized". */
static lc_key128 lc_zobrist_op(uint32_t i)
{
    lc_key128 k = {lc_mix64(2 * (uint64_t)i), lc_mix64(2 * (uint64_t)i + 1)};
    return k;
}

/* Key of "the register holds value s" (a domain disjoint from the above). */
static lc_key128 lc_zobrist_state(uint32_t s)
{
    uint64_t base = 1ull << 63;
    lc_key128 k = {lc_mix64(base | (2 * (uint64_t)s)), lc_mix64(base | (2 * (uint64_t)s + 1))};
    return k;
}

/* Key of "a run of unknown operations began in state s". */
static lc_key128 lc_zobrist_chain(uint32_t s)
{
    if (s == LC_NO_CHAIN) {
        lc_key128 none = {0, 0};
        return none;
    }
    uint64_t base = 1ull << 62;
    lc_key128 k = {lc_mix64(base | (2 * (uint64_t)s)), lc_mix64(base | (2 * (uint64_t)s + 1))};
    return k;
}

static void lc_memo_clear(lc_ctx *c, size_t n_ops)
{
    size_t cap = 64;
    while (cap < 4 * n_ops && cap < c->memo_alloc) {
        cap *= 2;
    }
    if (cap > c->memo_alloc) {
        cap = c->memo_alloc;
    }
    c->memo_cap = cap;
    c->memo_len = 0;
    c->memo_entries = 0;
    c->pool_len = 0;
    if (cap > 0) {
        memset(c->memo, 0, cap * sizeof(c->memo[0]));
    }
}

static size_t lc_memo_find(const lc_memo_slot *t, size_t cap, uint64_t a, uint64_t b)
{
    size_t i = (size_t)a & (cap - 1);
    while ((t[i].a != 0 || t[i].b != 0) && (t[i].a != a || t[i].b != b)) {
        i = (i + 1) & (cap - 1);
    }
    return i;
}

static int lc_memo_grow(lc_ctx *c)
{
    size_t ncap = c->memo_cap * 2;
    if (ncap > SIZE_MAX / sizeof(lc_memo_slot)) {
        return LINCHECK_ENOMEM;
    }
    lc_memo_slot *t = calloc(ncap, sizeof(*t));
    if (t == NULL) {
        return LINCHECK_ENOMEM;
    }
    for (size_t i = 0; i < c->memo_cap; i++) {
        if (c->memo[i].a != 0 || c->memo[i].b != 0) {
            t[lc_memo_find(t, ncap, c->memo[i].a, c->memo[i].b)] = c->memo[i];
        }
    }
    free(c->memo);
    c->memo = t;
    c->memo_cap = ncap;
    c->memo_alloc = ncap;
    return 0;
}

/* Record that the search reached configuration k with the current set-class
 * counters (c->classes[0 .. n_set).lin), which k leaves out. Returns 1 if it
 * is new, 0 if a configuration with the same k and counters no larger in
 * any class was reached before, LC_MEMO_FULL, or a negative error.
 *
 * Fewer linearized operations of a set class dominate more: the operations
 * are interchangeable and optional, so from the configuration with fewer
 * used every continuation of the other is still possible. Hence a config
 * dominated by one already explored (or being explored) is pruned. */
static int lc_memo_visit(lc_ctx *c, lc_key128 k)
{
    if (k.a == 0 && k.b == 0) {
        k.a = 1; /* (0, 0) marks an empty slot */
    }
    if (c->memo_entries >= c->max_memo) {
        return LC_MEMO_FULL;
    }
    if ((c->memo_len + 1) * 2 > c->memo_cap) {
        int rc = lc_memo_grow(c);
        if (rc != 0) {
            return rc;
        }
    }
    size_t i = lc_memo_find(c->memo, c->memo_cap, k.a, k.b);
    lc_memo_slot *slot = &c->memo[i];
    const uint32_t nset = c->n_set;
    if (slot->a == k.a && slot->b == k.b) {
        if (nset == 0) {
            return 0;
        }
        for (uint32_t n = slot->head; n != LC_NONE; n = c->pool[n]) {
            const uint32_t *u = &c->pool[n + 1];
            uint32_t j = 0;
            while (j < nset && u[j] <= c->classes[j].lin) {
                j++;
            }
            if (j == nset) {
                return 0;
            }
        }
    } else {
        *slot = (lc_memo_slot){k.a, k.b, LC_NONE};
        c->memo_len++;
    }
    if (nset > 0) {
        size_t need = c->pool_len + 1 + nset;
        if (need >= LC_NONE || need / LC_POOL_WORDS > c->max_memo) {
            return LC_MEMO_FULL;
        }
        int rc = lincheck_grow((void **)&c->pool, &c->pool_cap, need, sizeof(*c->pool));
        if (rc != 0) {
            return rc;
        }
        uint32_t node = (uint32_t)c->pool_len;
        c->pool[node] = slot->head;
        for (uint32_t j = 0; j < nset; j++) {
            c->pool[node + 1 + j] = c->classes[j].lin;
        }
        slot->head = node;
        c->pool_len = need;
    }
    c->memo_entries++;
    return 1;
}

/* Apply a kop to register value `s`: false if the model forbids it here. */
static bool lc_model_step(const lc_kop *k, uint32_t s, uint32_t *out)
{
    switch (k->kind) {
    case LINCHECK_READ:
        *out = s;
        return s == k->value;
    case LINCHECK_WRITE:
        *out = k->value;
        return true;
    case LINCHECK_DELETE:
        *out = 0;
        return true;
    default:
        assert(k->kind == LINCHECK_CAS);
        /* An unknown cas that happened and failed is the same as one that
         * never happened, so it only needs trying when it swaps. */
        if (k->unknown || k->cas_result) {
            *out = k->value;
            return s == k->expect;
        }
        *out = s;
        return s != k->expect;
    }
}

static int lc_event_cmp(const void *pa, const void *pb)
{
    const lc_event *a = pa;
    const lc_event *b = pb;
    if (a->time != b->time) {
        return a->time < b->time ? -1 : 1;
    }
    /* Calls before returns at equal times: touching intervals overlap. */
    if (a->is_return != b->is_return) {
        return a->is_return ? 1 : -1;
    }
    return a->kop < b->kop ? -1 : (a->kop > b->kop ? 1 : 0);
}

static uint64_t lc_end_plus_one(uint64_t end)
{
    return end == LC_INF ? LC_INF : end + 1;
}

/* Build c->kops for the ops of one key, dropping and converting unknown
 * operations as lincheck.h describes. Returns the number of kops kept. */
static size_t lc_simplify(lc_ctx *c, const uint32_t *ops, size_t n, uint64_t *non_failed)
{
    const lincheck_history *h = c->h;
    size_t nk = 0;
    uint64_t max_casfail_end = 0; /* 1 + latest end of an ok failed cas */

    /* Reset the per-value facts this key will touch. */
    for (size_t i = 0; i < n; i++) {
        const lc_op *o = &h->ops[ops[i]];
        uint32_t ids[2] = {o->value, o->expect};
        for (int j = 0; j < 2; j++) {
            c->writers[ids[j]] = 0;
            c->min_obs_end[ids[j]] = LC_INF;
            c->max_read_end[ids[j]] = 0;
            c->max_exp_end[ids[j]] = 0;
        }
    }

    for (size_t i = 0; i < n; i++) {
        const lc_op *o = &h->ops[ops[i]];
        if (o->status == LINCHECK_STATUS_FAIL) {
            continue;
        }
        (*non_failed)++;
        bool ok = o->status == LINCHECK_STATUS_OK;
        if (o->kind == LINCHECK_READ && !ok) {
            continue; /* observes nothing */
        }
        lc_kop *k = &c->kops[nk++];
        *k = (lc_kop){
            .op = ops[i],
            .value = o->kind == LINCHECK_DELETE ? 0 : o->value,
            .expect = o->expect,
            .kind = o->kind,
            .unknown = !ok,
            .cas_result = o->cas_result,
            .ret_event = LC_NONE,
            .start = o->start,
            .end = ok ? o->end : LC_INF,
        };
        switch (o->kind) {
        case LINCHECK_READ:
            if (k->value != 0 && o->end < c->min_obs_end[k->value]) {
                c->min_obs_end[k->value] = o->end;
            }
            if (o->end + 1 > c->max_read_end[k->value]) {
                c->max_read_end[k->value] = o->end + 1;
            }
            break;
        case LINCHECK_WRITE:
            c->writers[k->value]++;
            break;
        case LINCHECK_CAS:
            if (!ok || o->cas_result) {
                c->writers[k->value]++;
            }
            if (lc_end_plus_one(k->end) > c->max_exp_end[k->expect]) {
                c->max_exp_end[k->expect] = lc_end_plus_one(k->end);
            }
            if (ok && o->cas_result && k->expect != 0 && o->end < c->min_obs_end[k->expect]) {
                c->min_obs_end[k->expect] = o->end;
            }
            if (ok && !o->cas_result && o->end + 1 > max_casfail_end) {
                max_casfail_end = o->end + 1;
            }
            break;
        default:
            break;
        }
    }

    size_t kept = 0;
    for (size_t i = 0; i < nk; i++) {
        lc_kop *k = &c->kops[i];
        if (k->unknown) {
            assert(k->kind != LINCHECK_READ);
            uint32_t v = k->value;
            if (v != 0 && c->writers[v] == 1 && c->min_obs_end[v] != LC_INF) {
                /* The only writer of an observed value: it happened, and
                 * before the first observer returned. */
                k->unknown = false;
                k->cas_result = true;
                k->end = c->min_obs_end[v] > k->start ? c->min_obs_end[v] : k->start;
            } else if (c->max_read_end[v] <= k->start && c->max_exp_end[v] <= k->start &&
                       max_casfail_end <= k->start) {
                continue; /* nobody could have seen it: let it not happen */
            }
        }
        c->kops[kept++] = *k;
    }

    /* A value that no read returns and no cas expects is indistinguishable
     * from any other such value: those written by unknown operations all
     * become one state, LC_BOTTOM, so that the operations fall into few
     * classes (lc_classify). Values of ok operations stay, for the
     * explanations. */
    for (size_t i = 0; i < kept; i++) {
        lc_kop *k = &c->kops[i];
        uint32_t v = k->value;
        if (k->unknown && (k->kind == LINCHECK_WRITE || k->kind == LINCHECK_CAS) && v != 0 &&
            c->max_read_end[v] == 0 && c->max_exp_end[v] == 0) {
            k->value = LC_BOTTOM;
        }
    }
    return kept;
}

static int lc_ukey_cmp(const void *pa, const void *pb)
{
    const lc_ukey *a = pa;
    const lc_ukey *b = pb;
    if (a->kind != b->kind) {
        return a->kind < b->kind ? -1 : 1;
    }
    if (a->expect != b->expect) {
        return a->expect < b->expect ? -1 : 1;
    }
    if (a->value != b->value) {
        return a->value < b->value ? -1 : 1;
    }
    if (a->start != b->start) {
        return a->start < b->start ? -1 : 1;
    }
    return a->kop < b->kop ? -1 : (a->kop > b->kop ? 1 : 0);
}

/* Group the unknown kops into classes of interchangeable operations: same
 * effect (write/delete of the same value, or cas with the same expect and
 * value). Once two of them have been called, swapping them in any
 * linearization gives another, so the search takes each class's operations
 * in call order only: k pending look-alikes give k + 1 configurations, not
 * 2^k. Set classes come first; cas classes follow, sorted by expect. */
static void lc_classify(lc_ctx *c, size_t nk)
{
    size_t nu = 0;
    for (size_t i = 0; i < nk; i++) {
        const lc_kop *k = &c->kops[i];
        if (k->unknown) {
            c->ukeys[nu++] = (lc_ukey){
                .kind = k->kind == LINCHECK_CAS ? 1 : 0,
                .value = k->value,
                .expect = k->kind == LINCHECK_CAS ? k->expect : 0,
                .kop = (uint32_t)i,
                .start = k->start,
            };
        }
    }
    qsort(c->ukeys, nu, sizeof(c->ukeys[0]), lc_ukey_cmp);
    c->n_classes = 0;
    c->n_set = 0;
    for (size_t i = 0; i < nu; i++) {
        const lc_ukey *u = &c->ukeys[i];
        if (i == 0 || u->kind != u[-1].kind || u->value != u[-1].value ||
            u->expect != u[-1].expect) {
            c->classes[c->n_classes++] = (lc_class){
                .first = (uint32_t)i,
                .size = 0,
                .lin = 0,
                .expect = u->expect,
            };
            if (u->kind == 0) {
                c->n_set++;
            }
        }
        c->classes[c->n_classes - 1].size++;
        c->kops[u->kop].cls = c->n_classes - 1;
    }
}

/* The cas classes expecting value s: classes[*lo .. *hi). */
static void lc_cas_range(const lc_ctx *c, uint32_t s, uint32_t *lo, uint32_t *hi)
{
    uint32_t a = c->n_set;
    uint32_t b = c->n_classes;
    while (a < b) {
        uint32_t m = a + (b - a) / 2;
        if (c->classes[m].expect < s) {
            a = m + 1;
        } else {
            b = m;
        }
    }
    *lo = a;
    while (b < c->n_classes && c->classes[b].expect == s) {
        b++;
    }
    *hi = b;
}

static void lc_note_frontier(lc_ctx *c, uint32_t event, uint32_t state)
{
    if (c->best_event == LC_NONE || event > c->best_event) {
        c->best_event = event;
        c->best_states_len = 0;
    } else if (event < c->best_event) {
        return;
    }
    for (size_t i = 0; i < c->best_states_len; i++) {
        if (c->best_states[i] == state) {
            return;
        }
    }
    if (c->best_states_len < LC_STATES_SHOWN) {
        c->best_states[c->best_states_len++] = state;
    }
}

static void lc_explain_violation(lc_ctx *c, const uint32_t *ops, size_t n, uint32_t key,
                                 lincheck_result *res)
{
    const lincheck_history *h = c->h;
    lc_text t = {res->explanation, sizeof(res->explanation), 0};
    assert(c->best_event != LC_NONE);
    const lc_kop *bad = &c->kops[c->events[c->best_event].kop];
    const lc_op *bo = &h->ops[bad->op];
    res->op_id = bo->id;

    lc_text_add(&t, "key ");
    lc_text_value(&t, h, key);
    lc_text_add(&t, ": this operation cannot be linearized:\n  ");
    lc_text_op(&t, h, bo);
    if (bo->status != LINCHECK_STATUS_OK) {
        lc_text_add(&t, " (its value was observed, so it must have taken effect by ");
        lc_text_time(&t, bad->end);
        lc_text_add(&t, ")");
    }
    lc_text_add(&t, "\nvalues the key could hold when it returned:");
    for (size_t i = 0; i < c->best_states_len; i++) {
        lc_text_add(&t, i ? ", " : " ");
        lc_text_value(&t, h, c->best_states[i]);
    }
    if (c->best_states_len == LC_STATES_SHOWN) {
        lc_text_add(&t, ", ...");
    }

    /* Operations whose intervals overlap it. */
    size_t shown = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const lc_op *o = &h->ops[ops[i]];
        if (ops[i] == bad->op || o->status == LINCHECK_STATUS_FAIL) {
            continue;
        }
        if (o->start <= bad->end && o->end >= bad->start) {
            if (total == 0) {
                lc_text_add(&t, "\nconcurrent operations:");
            }
            total++;
            if (shown < LC_CONCURRENT_SHOWN) {
                lc_text_add(&t, "\n  ");
                lc_text_op(&t, h, o);
                shown++;
            }
        }
    }
    if (total == 0) {
        lc_text_add(&t, "\nconcurrent operations: none");
    } else if (total > shown) {
        lc_text_add(&t, "\n  (and %zu more)", total - shown);
    }

    /* The last few writes that completed before it began. */
    uint32_t prior[LC_PRIOR_SHOWN];
    size_t prior_len = 0;
    for (size_t i = 0; i < n; i++) {
        const lc_op *o = &h->ops[ops[i]];
        if (o->status != LINCHECK_STATUS_OK || o->end >= bad->start || o->kind == LINCHECK_READ ||
            (o->kind == LINCHECK_CAS && !o->cas_result)) {
            continue;
        }
        /* insert by end time, latest first, keep LC_PRIOR_SHOWN */
        size_t pos = prior_len;
        while (pos > 0 && h->ops[prior[pos - 1]].end < o->end) {
            pos--;
        }
        if (pos >= LC_PRIOR_SHOWN) {
            continue;
        }
        size_t last = prior_len < LC_PRIOR_SHOWN ? prior_len : LC_PRIOR_SHOWN - 1;
        memmove(&prior[pos + 1], &prior[pos], (last - pos) * sizeof(prior[0]));
        prior[pos] = ops[i];
        if (prior_len < LC_PRIOR_SHOWN) {
            prior_len++;
        }
    }
    lc_text_add(&t, "\nlast writes completed before it began:");
    if (prior_len == 0) {
        lc_text_add(&t, " none (the key starts absent)");
    }
    for (size_t i = 0; i < prior_len; i++) {
        lc_text_add(&t, "\n  ");
        lc_text_op(&t, h, &h->ops[prior[i]]);
    }
}

static int lc_reserve_key(lc_ctx *c, size_t n)
{
    int rc = lincheck_grow((void **)&c->kops, &c->kops_cap, n, sizeof(*c->kops));
    if (rc == 0) {
        rc = lincheck_grow((void **)&c->events, &c->events_cap, 2 * n, sizeof(*c->events));
    }
    if (rc == 0) {
        rc = lincheck_grow((void **)&c->next, &c->next_cap, 2 * n + 1, sizeof(*c->next));
    }
    if (rc == 0) {
        rc = lincheck_grow((void **)&c->prev, &c->prev_cap, 2 * n + 1, sizeof(*c->prev));
    }
    if (rc == 0) {
        rc = lincheck_grow((void **)&c->stack, &c->stack_cap, n, sizeof(*c->stack));
    }
    if (rc == 0) {
        rc = lincheck_grow((void **)&c->ukeys, &c->ukeys_cap, n, sizeof(*c->ukeys));
    }
    if (rc == 0) {
        rc = lincheck_grow((void **)&c->classes, &c->classes_cap, n, sizeof(*c->classes));
    }
    if (rc == 0 && c->memo_alloc == 0) {
        c->memo = calloc(64, sizeof(*c->memo));
        if (c->memo == NULL) {
            return LINCHECK_ENOMEM;
        }
        c->memo_alloc = 64;
    }
    return rc;
}

typedef enum lc_key_verdict {
    LC_KEY_OK,
    LC_KEY_VIOLATION,
    LC_KEY_STEPS,
    LC_KEY_MEMO,
} lc_key_verdict;

/* Whether the search may linearize kop k now, and the values after it.
 *
 * The search state is (set of linearized operations, register value, chain)
 * where chain is LC_NO_CHAIN, or the register value from before a run of
 * unknown operations that was just linearized. These restrictions keep
 * unknown operations from multiplying the configurations, each justified by
 * rewriting any linearization into one that obeys it:
 *   - look-alike unknown operations go in call order (lc_classify);
 *   - an unknown operation that leaves the value unchanged is never needed;
 *   - a run of unknown operations is only worth it if the ok operation right
 *     after it could not have gone in the value before the run. Otherwise
 *     that operation can go first: a read or failed cas leaves the value for
 *     the run to continue from, and a write, delete or swapping cas makes the
 *     run irrelevant, so it can be left out (unknown operations may never
 *     happen). A run with no ok operation after it can be left out too;
 *   - likewise, an unknown write or delete may only begin a run: whatever
 *     came before it in the run would be irrelevant. */
static bool lc_may_step(const lc_kop *k, uint32_t state, uint32_t chain, uint32_t *ns,
                        uint32_t *nchain)
{
    if (k->unknown) {
        if (!lc_model_step(k, state, ns) || *ns == state) {
            return false;
        }
        if (k->kind != LINCHECK_CAS && chain != LC_NO_CHAIN) {
            return false; /* it would make the run so far irrelevant */
        }
        *nchain = chain == LC_NO_CHAIN ? state : chain;
        return true;
    }
    if (!lc_model_step(k, state, ns)) {
        return false;
    }
    uint32_t ignored;
    if (chain != LC_NO_CHAIN && lc_model_step(k, chain, &ignored)) {
        return false;
    }
    *nchain = LC_NO_CHAIN;
    return true;
}

/* After a run of unknown operations that began in value s0 and has reached
 * value s, can anything follow? An ok candidate (a call before the first
 * return in the list) that could not go in s0 but can in s, or an unknown
 * cas expecting s. If not, the configuration is a dead end: skip it rather
 * than memoize it. */
static bool lc_run_may_continue(const lc_ctx *c, uint32_t head, uint32_t s0, uint32_t s)
{
    uint32_t lo;
    uint32_t hi;
    lc_cas_range(c, s, &lo, &hi);
    if (lo < hi) {
        return true;
    }
    for (uint32_t e = c->next[head]; e != LC_NONE && !c->events[e].is_return; e = c->next[e]) {
        const lc_kop *k = &c->kops[c->events[e].kop];
        uint32_t ignored;
        if (lc_model_step(k, s, &ignored) && !lc_model_step(k, s0, &ignored)) {
            return true;
        }
    }
    return false;
}

/* Memoize the configuration with linearized-set hash `set` (which leaves out
 * set-class operations, counted instead), value ns and chain nchain. The
 * set-class counters must already be those of the configuration. Returns 1
 * if it is new, 0 if seen (or dominated), or a negative error / LC_MEMO_FULL. */
static int lc_visit(lc_ctx *c, lc_key128 set, uint32_t ns, uint32_t nchain)
{
    lc_key128 zs = lc_zobrist_state(ns);
    lc_key128 zc = lc_zobrist_chain(nchain);
    lc_key128 mk = {set.a ^ zs.a ^ zc.a, set.b ^ zs.b ^ zc.b};
    return lc_memo_visit(c, mk);
}

/* The WGL search for one key. c->events holds the call and return events
 * of the n_ok ok kops in time order, linked into a list with head sentinel
 * nev; unknown kops are grouped in c->classes.
 *
 * At each configuration the candidates are, first, the ok calls before the
 * first return left in the list (phase 1), then the unknown operations that
 * were called by that return's time: the next of each set class, and the
 * next of each cas class expecting the current value (phase 2). When no
 * candidate leads anywhere new, the search backtracks. Sets *verdict (left
 * as LC_KEY_OK unless something else is found) and *steps_out.
 * Returns 0 or LINCHECK_ENOMEM. */
static int lc_search(lc_ctx *c, size_t nev, size_t n_ok, lc_key_verdict *verdict,
                     uint64_t *steps_out)
{
    const uint32_t head = (uint32_t)nev;
    size_t depth = 0;
    size_t n_lin_ok = 0;
    uint32_t state = 0;
    uint32_t chain = LC_NO_CHAIN;
    lc_key128 hash = {0, 0}; /* of the linearized set */
    uint64_t steps = 0;
    int rc = 0;

    bool phase2 = false;
    uint32_t entry = c->next[head]; /* phase 1 cursor */
    uint32_t ucur = 0;              /* phase 2 cursor: set classes, then cas_lo.. */
    uint32_t cas_lo = 0;
    uint32_t cas_hi = 0;
    uint64_t ret_time = 0;
    for (;;) {
        if (steps >= c->max_steps) {
            *verdict = LC_KEY_STEPS;
            break;
        }
        steps++;
        uint32_t ns;
        uint32_t nchain;
        if (!phase2) {
            /* The list always holds the return of an unplaced ok kop. */
            assert(entry != LC_NONE);
            const lc_event *ev = &c->events[entry];
            const lc_kop *k = &c->kops[ev->kop];
            if (ev->is_return) {
                lc_note_frontier(c, entry, state);
                phase2 = true;
                ucur = 0;
                ret_time = ev->time;
                lc_cas_range(c, state, &cas_lo, &cas_hi);
                continue;
            }
            if (lc_may_step(k, state, chain, &ns, &nchain)) {
                lc_key128 z = lc_zobrist_op(ev->kop);
                lc_key128 h2 = {hash.a ^ z.a, hash.b ^ z.b};
                int v = lc_visit(c, h2, ns, nchain);
                if (v < 0 || v == LC_MEMO_FULL) {
                    rc = v < 0 ? v : 0;
                    *verdict = LC_KEY_MEMO;
                    break;
                }
                if (v == 1) {
                    assert(depth < c->stack_cap);
                    c->stack[depth++] = (lc_frame){.item = entry, .state = state, .chain = chain};
                    state = ns;
                    chain = nchain;
                    hash = h2;
                    /* lift the call and its return out of the list */
                    uint32_t r = k->ret_event;
                    c->next[c->prev[entry]] = c->next[entry];
                    c->prev[c->next[entry]] = c->prev[entry]; /* a return follows */
                    c->next[c->prev[r]] = c->next[r];
                    if (c->next[r] != LC_NONE) {
                        c->prev[c->next[r]] = c->prev[r];
                    }
                    if (++n_lin_ok == n_ok) {
                        break;
                    }
                    entry = c->next[head];
                    continue;
                }
            }
            entry = c->next[entry];
            continue;
        }

        /* Skip, within this step, the classes with nothing to offer: all
         * used, next one not called yet, or a set class inside a run. */
        if (ucur < c->n_set && chain != LC_NO_CHAIN) {
            ucur = c->n_set;
        }
        for (; ucur < c->n_set + (cas_hi - cas_lo); ucur++) {
            const lc_class *cl = &c->classes[ucur < c->n_set ? ucur : cas_lo + (ucur - c->n_set)];
            if (cl->lin < cl->size &&
                c->kops[c->ukeys[cl->first + cl->lin].kop].start <= ret_time) {
                break;
            }
        }
        uint32_t ci = ucur < c->n_set ? ucur : cas_lo + (ucur - c->n_set);
        if (ucur < c->n_set || ci < cas_hi) {
            lc_class *cl = &c->classes[ci];
            if (cl->lin < cl->size) {
                uint32_t ki = c->ukeys[cl->first + cl->lin].kop;
                const lc_kop *k = &c->kops[ki];
                if (k->start <= ret_time && lc_may_step(k, state, chain, &ns, &nchain) &&
                    lc_run_may_continue(c, head, nchain, ns)) {
                    /* set-class operations are counted, not hashed */
                    lc_key128 h2 = hash;
                    if (ci >= c->n_set) {
                        lc_key128 z = lc_zobrist_op(ki);
                        h2.a ^= z.a;
                        h2.b ^= z.b;
                    }
                    cl->lin++;
                    int v = lc_visit(c, h2, ns, nchain);
                    cl->lin--;
                    if (v < 0 || v == LC_MEMO_FULL) {
                        rc = v < 0 ? v : 0;
                        *verdict = LC_KEY_MEMO;
                        break;
                    }
                    if (v == 1) {
                        assert(depth < c->stack_cap);
                        c->stack[depth++] = (lc_frame){.item = ki,
                                                       .state = state,
                                                       .chain = chain,
                                                       .ucur = ucur,
                                                       .ret_time = ret_time,
                                                       .unknown = true};
                        state = ns;
                        chain = nchain;
                        hash = h2;
                        cl->lin++;
                        phase2 = false;
                        entry = c->next[head];
                        continue;
                    }
                }
            }
            ucur++;
            continue;
        }

        /* No candidate left here: undo the last step and try its next. */
        if (depth == 0) {
            *verdict = LC_KEY_VIOLATION;
            break;
        }
        lc_frame f = c->stack[--depth];
        uint32_t kop = f.unknown ? f.item : c->events[f.item].kop;
        if (!f.unknown || c->kops[kop].cls >= c->n_set) {
            lc_key128 z = lc_zobrist_op(kop);
            hash.a ^= z.a;
            hash.b ^= z.b;
        }
        state = f.state;
        chain = f.chain;
        if (f.unknown) {
            lc_class *cl = &c->classes[c->kops[kop].cls];
            assert(cl->lin > 0 && c->ukeys[cl->first + cl->lin - 1].kop == kop);
            cl->lin--;
            phase2 = true;
            ucur = f.ucur + 1;
            ret_time = f.ret_time;
            lc_cas_range(c, state, &cas_lo, &cas_hi);
        } else {
            /* unlift in reverse order: the return, then the call */
            uint32_t r = c->kops[kop].ret_event;
            c->next[c->prev[r]] = r;
            if (c->next[r] != LC_NONE) {
                c->prev[c->next[r]] = r;
            }
            c->next[c->prev[f.item]] = f.item;
            c->prev[c->next[f.item]] = f.item;
            n_lin_ok--;
            phase2 = false;
            entry = c->next[f.item];
        }
    }
    *steps_out = steps;
    return rc;
}

/* Check one key. *verdict gets the outcome; returns 0 or an error. */
static int lc_check_key(lc_ctx *c, uint32_t key, const uint32_t *ops, size_t n,
                        lc_key_verdict *verdict, lincheck_result *res)
{
    int rc = lc_reserve_key(c, n);
    if (rc != 0) {
        return rc;
    }
    uint64_t non_failed = 0;
    size_t nk = lc_simplify(c, ops, n, &non_failed);
    res->ops_checked += non_failed;
    res->keys_checked++;

    /* Call and return events in time order. */
    size_t nev = 0;
    size_t n_ok = 0;
    for (size_t i = 0; i < nk; i++) {
        if (!c->kops[i].unknown) {
            c->events[nev++] = (lc_event){c->kops[i].start, (uint32_t)i, 0};
            c->events[nev++] = (lc_event){c->kops[i].end, (uint32_t)i, 1};
            n_ok++;
        }
    }
    *verdict = LC_KEY_OK;
    if (n_ok == 0) {
        return 0; /* what remains may all simply not have happened */
    }
    qsort(c->events, nev, sizeof(c->events[0]), lc_event_cmp);
    lc_classify(c, nk);

    for (size_t e = 0; e < nev; e++) {
        if (c->events[e].is_return) {
            c->kops[c->events[e].kop].ret_event = (uint32_t)e;
        }
    }
    /* The list: events 0..nev-1, sentinel head at index nev. */
    uint32_t head = (uint32_t)nev;
    for (size_t e = 0; e < nev; e++) {
        c->next[e] = e + 1 < nev ? (uint32_t)(e + 1) : LC_NONE;
        c->prev[e] = e == 0 ? head : (uint32_t)(e - 1);
    }
    c->next[head] = 0;
    c->prev[head] = LC_NONE;

    lc_memo_clear(c, nk);
    c->best_event = LC_NONE;
    c->best_states_len = 0;
    uint64_t steps = 0;
    rc = lc_search(c, nev, n_ok, verdict, &steps);
    res->steps += steps;
    if (rc != 0) {
        return rc;
    }
    if (*verdict == LC_KEY_VIOLATION) {
        lc_explain_violation(c, ops, n, key, res);
    }
    return 0;
}

static void lc_ctx_free(lc_ctx *c)
{
    free(c->key_first);
    free(c->key_start);
    free(c->by_key);
    free(c->writers);
    free(c->min_obs_end);
    free(c->max_read_end);
    free(c->max_exp_end);
    free(c->kops);
    free(c->events);
    free(c->next);
    free(c->prev);
    free(c->stack);
    free(c->ukeys);
    free(c->classes);
    free(c->memo);
    free(c->pool);
}

static void lc_set_key(const lincheck_history *h, uint32_t key, lincheck_result *res)
{
    res->key = lincheck_history_string(h, key, &res->key_len);
}

int lincheck_check(const lincheck_history *h, const lincheck_options *opt, lincheck_result *res)
{
    if (h == NULL || res == NULL) {
        return LINCHECK_EINVAL;
    }
    memset(res, 0, sizeof(*res));
    res->verdict = LINCHECK_OK;
    res->ops_total = h->ops_len;

    lc_ctx c = {
        .h = h,
        .max_steps = LINCHECK_DEFAULT_MAX_STEPS,
        .max_memo = LINCHECK_DEFAULT_MAX_MEMO,
    };
    if (opt != NULL && opt->max_steps_per_key != 0) {
        c.max_steps = opt->max_steps_per_key;
    }
    if (opt != NULL && opt->max_memo_entries_per_key != 0) {
        c.max_memo = opt->max_memo_entries_per_key;
    }
    int rc = LINCHECK_ENOMEM;
    size_t ns = h->strs_len;
    size_t nops = h->ops_len;
    c.key_first = malloc((nops ? nops : 1) * sizeof(*c.key_first));
    c.key_start = calloc(ns + 1, sizeof(*c.key_start));
    c.by_key = malloc((nops ? nops : 1) * sizeof(*c.by_key));
    c.writers = malloc(ns * sizeof(*c.writers));
    c.min_obs_end = malloc(ns * sizeof(*c.min_obs_end));
    c.max_read_end = malloc(ns * sizeof(*c.max_read_end));
    c.max_exp_end = malloc(ns * sizeof(*c.max_exp_end));
    if (!c.key_first || !c.key_start || !c.by_key || !c.writers || !c.min_obs_end ||
        !c.max_read_end || !c.max_exp_end) {
        goto out;
    }

    /* Counting sort of operations by key, keys in order of appearance. */
    for (size_t i = 0; i < nops; i++) {
        uint32_t k = h->ops[i].key;
        if (c.key_start[k + 1]++ == 0) {
            c.key_first[c.keys_len++] = k;
        }
    }
    for (size_t s = 0; s < ns; s++) {
        c.key_start[s + 1] += c.key_start[s];
    }
    for (size_t i = 0; i < nops; i++) {
        c.by_key[c.key_start[h->ops[i].key]++] = (uint32_t)i;
    }
    /* key_start[k] now holds the end of k's group; groups are contiguous. */

    uint32_t unknown_key = 0;
    lc_key_verdict unknown_kind = LC_KEY_OK;
    for (size_t ki = 0; ki < c.keys_len; ki++) {
        uint32_t k = c.key_first[ki];
        size_t end = c.key_start[k];
        size_t begin = k == 0 ? 0 : c.key_start[k - 1];
        /* groups are laid out in key id order: k's begins where k-1's ends */
        const uint32_t *ops = c.by_key + begin;
        size_t n = end - begin;
        assert(n > 0);
        lc_key_verdict v;
        rc = lc_check_key(&c, k, ops, n, &v, res);
        if (rc != 0) {
            goto out;
        }
        if (v == LC_KEY_VIOLATION) {
            res->verdict = LINCHECK_VIOLATION;
            res->limit = LINCHECK_LIMIT_NONE;
            lc_set_key(h, k, res);
            goto out;
        }
        if ((v == LC_KEY_STEPS || v == LC_KEY_MEMO) && unknown_kind == LC_KEY_OK) {
            unknown_kind = v;
            unknown_key = k;
        }
    }
    if (unknown_kind != LC_KEY_OK) {
        res->verdict = LINCHECK_UNKNOWN;
        res->limit = unknown_kind == LC_KEY_STEPS ? LINCHECK_LIMIT_STEPS : LINCHECK_LIMIT_MEMO;
        lc_set_key(h, unknown_key, res);
        lc_text t = {res->explanation, sizeof(res->explanation), 0};
        lc_text_add(&t, "key ");
        lc_text_value(&t, h, unknown_key);
        if (unknown_kind == LC_KEY_STEPS) {
            lc_text_add(&t, ": search limit of %llu steps reached",
                        (unsigned long long)c.max_steps);
        } else {
            lc_text_add(&t, ": search limit of %llu memoized configurations reached",
                        (unsigned long long)c.max_memo);
        }
        lc_text_add(&t, "; the history is neither proven linearizable nor refuted");
    }
    rc = 0;
out:
    lc_ctx_free(&c);
    return rc;
}
