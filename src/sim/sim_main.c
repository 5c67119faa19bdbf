/*
 * sim_main.c: the cord-sim command line.
 *
 *   cord-sim --seeds N [--first-seed S] [--nodes K]   a sweep; exit 0 iff every seed held
 *   cord-sim --seed S [--nodes K] [--trace-hash]      one seed; the hash of its trace last
 *   ... [--inject-bug NAME] [--verbose] [--safety-ms MS] [--keep-going]
 *
 * Exit status: 0 every property held, 1 a property was violated (the
 * report names it and the command that reproduces it), 2 bad usage. A crash
 * of the simulator or of the core (abort, sanitizer report) is none of these.
 */
#include "sim/sim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
    const char *name;
    uint32_t bit;
} bug_names[] = {
    {"commit-old-term", RAFT_BUG_COMMIT_OLD_TERM},
    {"double-vote", RAFT_BUG_DOUBLE_VOTE},
    {"ack-before-persist", RAFT_BUG_ACK_BEFORE_PERSIST},
    {"stale-read", RAFT_BUG_STALE_READ},
};
#define N_BUGS (sizeof(bug_names) / sizeof(bug_names[0]))

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cord-sim [--seeds N] [--first-seed S] [--nodes K] [--inject-bug NAME]\n"
            "       cord-sim --seed S [--nodes K] [--trace-hash] [--verbose] [--inject-bug NAME]\n"
            "\n"
            "Runs clusters of the real consensus core through simulated crashes, partitions,\n"
            "message loss/duplication/reordering, slow and torn disks, membership changes and\n"
            "leadership transfers, checking Raft's safety properties after every event and the\n"
            "clients' history for linearizability; then heals everything and requires progress.\n"
            "\n"
            "  --seeds N          run N seeds (default 100), starting at --first-seed (default 1)\n"
            "  --first-seed S     first seed of a sweep\n"
            "  --seed S           run the single seed S and print its fault profile\n"
            "  --nodes K          members per cluster, 1..%d (default 3)\n"
            "  --inject-bug NAME  compile-time defect of the simulator's core copy to switch on:\n"
            "                     commit-old-term, double-vote, ack-before-persist, stale-read\n"
            "                     (repeatable); the run is expected to fail\n"
            "  --trace-hash       print, as the last line, the FNV-1a hash of the event trace\n"
            "  --verbose          print every event\n"
            "  --safety-ms MS     simulated length of the fault phase (default 6000)\n"
            "  --liveness-ms MS   bound on recovery after healing (default 15000)\n"
            "  --keep-going       in a sweep, go on after a failing seed\n"
            "  --help             this text\n"
            "\n"
            "Exit status: 0 all seeds held, 1 a property was violated, 2 usage error.\n",
            SIM_MAX_NODES);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add_stats(sim_stats *t, const sim_stats *s)
{
    t->events += s->events;
    t->ops += s->ops;
    t->ops_ok += s->ops_ok;
    t->ops_fail += s->ops_fail;
    t->ops_unknown += s->ops_unknown;
    t->faults += s->faults;
    t->elections += s->elections;
    t->msgs += s->msgs;
    t->dropped += s->dropped;
    t->duplicated += s->duplicated;
    t->crashes += s->crashes;
    t->restarts += s->restarts;
    t->snapshots_sent += s->snapshots_sent;
    t->snapshots_installed += s->snapshots_installed;
    t->conf_changes += s->conf_changes;
    t->applied_entries += s->applied_entries;
}

typedef struct cli {
    const char *argv0;
    uint64_t seeds, first_seed, seed;
    bool single, trace_hash, verbose, keep_going;
    uint32_t nodes, bugs;
    uint64_t safety_ms, liveness_ms;
    bool safety_set, liveness_set;
} cli;

static void print_repro(FILE *f, const cli *c, uint64_t seed)
{
    fprintf(f, "reproduce: %s --seed %llu --nodes %u", c->argv0, (unsigned long long)seed,
            c->nodes);
    for (size_t i = 0; i < N_BUGS; i++)
        if (c->bugs & bug_names[i].bit)
            fprintf(f, " --inject-bug %s", bug_names[i].name);
    if (c->safety_set)
        fprintf(f, " --safety-ms %llu", (unsigned long long)c->safety_ms);
    if (c->liveness_set)
        fprintf(f, " --liveness-ms %llu", (unsigned long long)c->liveness_ms);
    fprintf(f, "\n");
}

static void print_totals(const cli *c, uint64_t ran, uint64_t failed, const sim_stats *t,
                         double secs)
{
    printf("seeds %llu (first %llu, %u nodes%s), failed %llu\n", (unsigned long long)ran,
           (unsigned long long)(c->single ? c->seed : c->first_seed), c->nodes,
           c->bugs ? ", bug injected" : "", (unsigned long long)failed);
    printf("operations %llu (ok %llu, fail %llu, unknown %llu), faults %llu, elections %llu\n",
           (unsigned long long)t->ops, (unsigned long long)t->ops_ok,
           (unsigned long long)t->ops_fail, (unsigned long long)t->ops_unknown,
           (unsigned long long)t->faults, (unsigned long long)t->elections);
    printf("events %llu, messages %llu (dropped %llu, duplicated %llu), crashes %llu, "
           "snapshots sent %llu installed %llu, conf changes %llu, entries applied %llu\n",
           (unsigned long long)t->events, (unsigned long long)t->msgs,
           (unsigned long long)t->dropped, (unsigned long long)t->duplicated,
           (unsigned long long)t->crashes, (unsigned long long)t->snapshots_sent,
           (unsigned long long)t->snapshots_installed, (unsigned long long)t->conf_changes,
           (unsigned long long)t->applied_entries);
    if (secs > 0)
        printf("wall %.2f s: %.1f seeds/s, %.0f simulated client ops/s\n", secs, (double)ran / secs,
               (double)t->ops / secs);
}

int main(int argc, char **argv)
{
    cli c = {.argv0 = argv[0],
             .seeds = 100,
             .first_seed = 1,
             .nodes = 3,
             .safety_ms = 6000,
             .liveness_ms = 15000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t x = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return SIM_EXIT_OK;
        } else if (strcmp(a, "--seeds") == 0 && parse_u64(v, &x) && x > 0) {
            c.seeds = x;
            i++;
        } else if (strcmp(a, "--first-seed") == 0 && parse_u64(v, &x)) {
            c.first_seed = x;
            i++;
        } else if (strcmp(a, "--seed") == 0 && parse_u64(v, &x)) {
            c.seed = x;
            c.single = true;
            i++;
        } else if (strcmp(a, "--nodes") == 0 && parse_u64(v, &x) && x >= 1 && x <= SIM_MAX_NODES) {
            c.nodes = (uint32_t)x;
            i++;
        } else if (strcmp(a, "--safety-ms") == 0 && parse_u64(v, &x) && x >= 1 &&
                   x <= 3600 * 1000) {
            c.safety_ms = x;
            c.safety_set = true;
            i++;
        } else if (strcmp(a, "--liveness-ms") == 0 && parse_u64(v, &x) && x >= 100 &&
                   x <= 3600 * 1000) {
            c.liveness_ms = x;
            c.liveness_set = true;
            i++;
        } else if (strcmp(a, "--inject-bug") == 0 && v) {
            bool found = false;
            for (size_t b = 0; b < N_BUGS; b++)
                if (strcmp(v, bug_names[b].name) == 0) {
                    c.bugs |= bug_names[b].bit;
                    found = true;
                }
            if (!found) {
                fprintf(stderr, "cord-sim: unknown bug '%s'\n", v);
                usage(stderr);
                return SIM_EXIT_USAGE;
            }
            i++;
        } else if (strcmp(a, "--trace-hash") == 0) {
            c.trace_hash = true;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            c.verbose = true;
        } else if (strcmp(a, "--keep-going") == 0) {
            c.keep_going = true;
        } else {
            fprintf(stderr, "cord-sim: bad argument '%s'%s\n", a,
                    v && a[0] == '-' && a[1] == '-' ? " (or its value)" : "");
            usage(stderr);
            return SIM_EXIT_USAGE;
        }
    }
    if (c.trace_hash && !c.single) {
        fprintf(stderr, "cord-sim: --trace-hash needs --seed S\n");
        return SIM_EXIT_USAGE;
    }

    uint64_t first = c.single ? c.seed : c.first_seed;
    uint64_t count = c.single ? 1 : c.seeds;
    sim_stats total;
    memset(&total, 0, sizeof(total));
    uint64_t ran = 0, failed = 0, last_hash = 0;
    double t0 = wall_seconds();
    for (uint64_t i = 0; i < count; i++) {
        uint64_t seed = first + i;
        sim_options o = {.seed = seed,
                         .nodes = c.nodes,
                         .bugs = c.bugs,
                         .verbose = c.verbose,
                         .safety_us = c.safety_ms * SIM_MS,
                         .liveness_us = c.liveness_ms * SIM_MS,
                         .out = stdout};
        sim_stats st;
        sim_profile prof;
        char prop[64], detail[1536];
        bool ok = sim_run(&o, &st, &last_hash, prop, sizeof(prop), detail, sizeof(detail), &prof);
        ran++;
        add_stats(&total, &st);
        if (c.single && !c.verbose) {
            printf("seed %llu, %u nodes:\n", (unsigned long long)seed, c.nodes);
            sim_profile_print(&prof, stdout);
        }
        if (!ok) {
            failed++;
            printf("seed %llu: VIOLATION of %s: %s\n", (unsigned long long)seed, prop, detail);
            if (!c.single)
                sim_profile_print(&prof, stdout);
            print_repro(stdout, &c, seed);
            fflush(stdout);
            if (!c.keep_going)
                break;
        } else if (c.single) {
            printf("seed %llu: all properties held (%llu ops, %llu faults, %llu elections)\n",
                   (unsigned long long)seed, (unsigned long long)st.ops,
                   (unsigned long long)st.faults, (unsigned long long)st.elections);
        }
    }
    double secs = wall_seconds() - t0;
    print_totals(&c, ran, failed, &total, c.single ? 0 : secs);
    if (c.trace_hash)
        printf("trace-hash %016llx\n", (unsigned long long)last_hash);
    return failed ? SIM_EXIT_VIOLATION : SIM_EXIT_OK;
}
