/*
 * compactor.c: automatic compaction (--auto-compaction-mode/-retention), run
 * by the leader only, as etcd does.
 *   revision: every 5 s, compact to (current revision - retention) when
 *             that moved forward.
 *   periodic: the revision is sampled every retention/10; the store is
 *             compacted to the revision sampled one retention ago, so that
 *             `retention` worth of history is kept. A plain number of
 *             retention means hours; Go durations ("30m", "2h", "10s") work.
 * Compactions are ordinary Compact requests through the log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "etcdserverpb/rpc.pb-c.h"
#include "server/member_internal.h"

static void propose_compact(member *m, int64_t revision)
{
    Etcdserverpb__CompactionRequest rq = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    rq.revision = revision;
    uint8_t buf[32];
    size_t n = etcdserverpb__compaction_request__pack(&rq, buf);
    log_info("compactor: compacting to revision %lld", (long long)revision);
    member_propose(m, NULL, REQ_COMPACT, buf, n);
}

static void on_compactor(uv_timer_t *t)
{
    member *m = t->data;
    if (raft_leader(m->r) != m->id || m->failed) {
        m->compact_samples = 0; /* a new leader starts sampling afresh */
        return;
    }
    mvcc_status st;
    if (mvcc_status_revisions(storage_mvcc(m->st), &st) != MVCC_OK)
        return;
    int64_t target = 0;
    if (m->compact_revision_mode) {
        target = st.current_revision - m->compact_retention;
    } else {
        /* ring of the last COMPACT_SAMPLES revisions, one per interval */
        m->compact_ring[m->compact_samples % COMPACT_SAMPLES] = st.current_revision;
        m->compact_samples++;
        if (m->compact_samples > COMPACT_SAMPLES - 1)
            target = m->compact_ring[(m->compact_samples - COMPACT_SAMPLES) % COMPACT_SAMPLES];
    }
    if (target > st.compact_revision && target > m->compact_last && target <= st.current_revision) {
        m->compact_last = target;
        propose_compact(m, target);
    }
}

int compactor_start(member *m, cord_error *err)
{
    bool revision_mode = strcmp(m->cfg.auto_compaction_mode, "revision") == 0;
    int64_t r = config_parse_retention(m->cfg.auto_compaction_retention, revision_mode);
    if (r < 0)
        return cord_error_set(err, -1, 0, "--auto-compaction-retention: invalid value \"%s\"",
                              m->cfg.auto_compaction_retention);
    uv_timer_init(m->loop, &m->compact_auto_timer);
    m->compact_auto_timer.data = m;
    if (r == 0)
        return 0; /* off */
    m->compact_revision_mode = revision_mode;
    m->compact_retention = r;
    uint64_t every_ms = revision_mode ? 5000 : (uint64_t)(r / (COMPACT_SAMPLES - 1));
    if (every_ms < 10)
        every_ms = 10;
    uv_timer_start(&m->compact_auto_timer, on_compactor, every_ms, every_ms);
    log_info("compactor: %s mode, retention %s", m->cfg.auto_compaction_mode,
             m->cfg.auto_compaction_retention);
    return 0;
}
