#include "server/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CORD_VERSION     "0.1.0"
#define CORD_API_VERSION "3.4"

typedef enum { T_STR, T_U64, T_U32, T_STATE, T_LEVEL, T_BOOL } ftype;

typedef struct flag {
    const char *name;
    ftype type;
    size_t off;
    size_t size; /* T_STR: buffer size */
    const char *help;
} flag;

#define F(n, t, field, h)                                                                          \
    {                                                                                              \
        n, t, offsetof(config, field), sizeof(((config *)0)->field), h                             \
    }

static const flag flags[] = {
    F("name", T_STR, name, "human-readable name for this member (default \"default\")"),
    F("data-dir", T_STR, data_dir, "path to the data directory (default \"<name>.cord\")"),
    F("listen-client-urls", T_STR, listen_client_urls, "URL to listen on for client traffic"),
    F("advertise-client-urls", T_STR, advertise_client_urls, "client URL to advertise"),
    F("listen-peer-urls", T_STR, listen_peer_urls, "URL to listen on for peer traffic"),
    F("initial-advertise-peer-urls", T_STR, initial_advertise_peer_urls,
      "this member's peer URL to advertise to the cluster"),
    F("initial-cluster", T_STR, initial_cluster,
      "initial cluster configuration for bootstrapping: name=peer-url,..."),
    F("initial-cluster-state", T_STATE, initial_cluster_state_new,
      "initial cluster state: new or existing"),
    F("initial-cluster-token", T_STR, initial_cluster_token, "initial cluster token"),
    F("snapshot-count", T_U64, snapshot_count,
      "applied entries between snapshots (at least; a snapshot also waits until the log "
      "written since the last one is as large as it)"),
    F("log-memory-bytes", T_U64, log_memory_bytes,
      "bytes of Raft log entries kept in memory (older applied ones are read back from the "
      "WAL when a follower needs them; 0: keep all until a snapshot)"),
    F("heartbeat-interval", T_U32, heartbeat_interval_ms, "time (ms) of a heartbeat interval"),
    F("election-timeout", T_U32, election_timeout_ms, "time (ms) for an election to time out"),
    F("quota-backend-bytes", T_U64, quota_backend_bytes,
      "raise alarms when the backend exceeds this size (0: default 2 GiB)"),
    F("max-request-bytes", T_U64, max_request_bytes, "maximum client request size in bytes"),
    F("auto-compaction-mode", T_STR, auto_compaction_mode, "periodic or revision"),
    F("auto-compaction-retention", T_STR, auto_compaction_retention,
      "auto compaction retention (periodic: hours or a duration like 30m; revision: count)"),
    F("strict-reconfig-check", T_BOOL, strict_reconfig_check,
      "refuse membership changes that could cost the cluster its quorum (default true; "
      "--strict-reconfig-check=false turns it off)"),
    F("log-level", T_LEVEL, log_level, "debug, info, warn or error"),
};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

void config_usage(const char *prog)
{
    printf("usage: %s [flags]\n\ncord: a replicated key-value store speaking the etcd v3 API.\n\n"
           "flags (each also read from CORD_<NAME> in the environment):\n",
           prog);
    for (size_t i = 0; i < N_FLAGS; i++)
        printf("  --%-30s %s\n", flags[i].name, flags[i].help);
    printf("  --%-30s %s\n  --%-30s %s\n", "help", "print this help", "version",
           "print the version");
}

static int set_flag(config *c, const flag *f, const char *v, char *err, size_t errlen)
{
    char *p = (char *)c + f->off;
    char *end = NULL;
    switch (f->type) {
    case T_STR:
        if (strlen(v) >= f->size) {
            snprintf(err, errlen, "--%s: value too long", f->name);
            return -1;
        }
        strcpy(p, v);
        return 0;
    case T_U64:
    case T_U32: {
        errno = 0;
        if (*v == '\0' || *v == '-') {
            snprintf(err, errlen, "--%s: invalid value \"%s\" (want a non-negative integer)",
                     f->name, v);
            return -1;
        }
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || *end != '\0' || (f->type == T_U32 && x > UINT32_MAX)) {
            snprintf(err, errlen, "--%s: invalid value \"%s\" (want a non-negative integer)",
                     f->name, v);
            return -1;
        }
        if (f->type == T_U64)
            *(uint64_t *)p = x;
        else
            *(uint32_t *)p = (uint32_t)x;
        return 0;
    }
    case T_STATE:
        if (strcmp(v, "new") == 0)
            *(bool *)p = true;
        else if (strcmp(v, "existing") == 0)
            *(bool *)p = false;
        else {
            snprintf(err, errlen, "--%s: invalid value \"%s\" (want new or existing)", f->name, v);
            return -1;
        }
        return 0;
    case T_BOOL:
        if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
            *(bool *)p = true;
        else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
            *(bool *)p = false;
        else {
            snprintf(err, errlen, "--%s: invalid value \"%s\" (want true or false)", f->name, v);
            return -1;
        }
        return 0;
    case T_LEVEL:
        if (log_level_parse(v, (enum log_level *)p) != 0) {
            snprintf(err, errlen, "--%s: invalid value \"%s\" (want debug, info, warn or error)",
                     f->name, v);
            return -1;
        }
        return 0;
    }
    return -1;
}

int config_url_parse(const char *s, config_url *u)
{
    memset(u, 0, sizeof(*u));
    const char *rest;
    if (strncmp(s, "http://", 7) == 0) {
        strcpy(u->scheme, "http");
        rest = s + 7;
    } else {
        return -1; /* https and unix sockets: not yet */
    }
    const char *colon = strrchr(rest, ':');
    if (!colon || colon == rest)
        return -1;
    size_t hl = (size_t)(colon - rest);
    if (hl >= sizeof(u->host))
        return -1;
    memcpy(u->host, rest, hl);
    u->host[hl] = '\0';
    if (u->host[0] == '[') { /* [::1] */
        if (hl < 3 || u->host[hl - 1] != ']')
            return -1;
        memmove(u->host, u->host + 1, hl - 2);
        u->host[hl - 2] = '\0';
    }
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || port == 0 || port > 65535 || (*end != '\0' && strcmp(end, "/") != 0))
        return -1;
    u->port = (uint16_t)port;
    return 0;
}

/* Checks every URL of a comma-separated list. */
static int check_urls(const char *flagname, const char *list, char *err, size_t errlen)
{
    char buf[CONFIG_STR_MAX];
    snprintf(buf, sizeof buf, "%s", list);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        config_url u;
        if (config_url_parse(t, &u) != 0) {
            snprintf(err, errlen, "--%s: invalid URL \"%s\" (want http://host:port)", flagname, t);
            return -1;
        }
        if (++n > CONFIG_MAX_URLS) {
            snprintf(err, errlen, "--%s: more than %d URLs", flagname, CONFIG_MAX_URLS);
            return -1;
        }
    }
    if (n == 0) {
        snprintf(err, errlen, "--%s: no URL given", flagname);
        return -1;
    }
    return 0;
}

static int parse_cluster(config *c, char *err, size_t errlen)
{
    char buf[sizeof c->initial_cluster];
    snprintf(buf, sizeof buf, "%s", c->initial_cluster);
    c->n_peers = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq || eq == t) {
            snprintf(err, errlen, "--initial-cluster: \"%s\" is not name=url", t);
            return -1;
        }
        *eq = '\0';
        config_url u;
        if (config_url_parse(eq + 1, &u) != 0) {
            snprintf(err, errlen, "--initial-cluster: invalid URL \"%s\" for %s", eq + 1, t);
            return -1;
        }
        /* a member may appear more than once (several peer URLs): keep the first */
        bool seen = false;
        for (uint32_t i = 0; i < c->n_peers; i++)
            if (strcmp(c->peers[i].name, t) == 0)
                seen = true;
        if (seen)
            continue;
        if (c->n_peers == CONFIG_MAX_MEMBERS || strlen(t) >= sizeof c->peers[0].name) {
            snprintf(err, errlen, "--initial-cluster: too many members or name too long");
            return -1;
        }
        snprintf(c->peers[c->n_peers].name, sizeof c->peers[0].name, "%s", t);
        snprintf(c->peers[c->n_peers].url, sizeof c->peers[0].url, "%s", eq + 1);
        c->n_peers++;
    }
    bool self = false;
    for (uint32_t i = 0; i < c->n_peers; i++)
        if (strcmp(c->peers[i].name, c->name) == 0)
            self = true;
    if (!self) {
        snprintf(err, errlen, "--initial-cluster: this member's name \"%s\" is not in \"%s\"",
                 c->name, c->initial_cluster);
        return -1;
    }
    return 0;
}

/* Parses a retention: "10" (hours, periodic; revisions, revision mode), "90s", "30m", "2h",
 * "1h30m". Returns milliseconds or revisions; -1 when malformed. */
int64_t config_parse_retention(const char *s, bool revision_mode)
{
    char *end;
    if (*s == '\0')
        return -1;
    long long n = strtoll(s, &end, 10);
    if (*end == '\0')
        return n < 0 ? -1 : (revision_mode ? n : n * 3600 * 1000);
    if (revision_mode)
        return -1;
    int64_t ms = 0;
    const char *p = s;
    while (*p) {
        double v = strtod(p, &end);
        if (end == p || v < 0)
            return -1;
        p = end;
        if (strncmp(p, "ms", 2) == 0) {
            ms += (int64_t)v;
            p += 2;
        } else if (*p == 'h') {
            ms += (int64_t)(v * 3600 * 1000);
            p++;
        } else if (*p == 'm') {
            ms += (int64_t)(v * 60 * 1000);
            p++;
        } else if (*p == 's') {
            ms += (int64_t)(v * 1000);
            p++;
        } else {
            return -1;
        }
    }
    return ms;
}

static const flag *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < N_FLAGS; i++)
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
            return &flags[i];
    return NULL;
}

int config_parse(config *c, int argc, char **argv, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->name, "default");
    strcpy(c->listen_client_urls, "http://localhost:2379");
    strcpy(c->advertise_client_urls, "http://localhost:2379");
    strcpy(c->listen_peer_urls, "http://localhost:2380");
    strcpy(c->initial_advertise_peer_urls, "http://localhost:2380");
    c->initial_cluster_state_new = true;
    strcpy(c->initial_cluster_token, "etcd-cluster");
    c->snapshot_count = 100000;
    c->log_memory_bytes = 4u << 20;
    c->heartbeat_interval_ms = 100;
    c->election_timeout_ms = 1000;
    c->max_request_bytes = 1572864;
    strcpy(c->auto_compaction_mode, "periodic");
    strcpy(c->auto_compaction_retention, "0");
    c->log_level = LOG_INFO;
    c->strict_reconfig_check = true;

    /* environment first */
    for (size_t i = 0; i < N_FLAGS; i++) {
        char env[128] = "CORD_";
        size_t k = 5;
        for (const char *p = flags[i].name; *p && k < sizeof env - 1; p++)
            env[k++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        env[k] = '\0';
        const char *v = getenv(env);
        if (v && set_flag(c, &flags[i], v, err, errlen) != 0) {
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s (from %s)", err, env);
            snprintf(err, errlen, "%s", tmp);
            return CONFIG_ERROR;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            config_usage(argv[0]);
            return CONFIG_EXIT;
        }
        if (strcmp(a, "--version") == 0) {
            printf("cord Version: %s\nAPI Version: %s\n", CORD_VERSION, CORD_API_VERSION);
            return CONFIG_EXIT;
        }
        if (strncmp(a, "--", 2) != 0 && !(a[0] == '-' && a[1] != '\0')) {
            snprintf(err, errlen, "unexpected argument \"%s\"", a);
            return CONFIG_ERROR;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const flag *f = find_flag(name, nl);
        if (!f) {
            snprintf(err, errlen, "unknown flag \"%.*s\" (see --help)", (int)nl + 2, a);
            return CONFIG_ERROR;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v && f->type == T_BOOL)
            v = "true"; /* as Go's flags: --flag alone sets it, --flag=false clears it */
        if (!v) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--%s needs a value", f->name);
                return CONFIG_ERROR;
            }
            v = argv[++i];
        }
        if (set_flag(c, f, v, err, errlen) != 0)
            return CONFIG_ERROR;
    }
    if (c->data_dir[0] == '\0')
        snprintf(c->data_dir, sizeof c->data_dir, "%s.cord", c->name);
    if (c->initial_cluster[0] == '\0') {
        char first[CONFIG_STR_MAX];
        snprintf(first, sizeof first, "%s", c->initial_advertise_peer_urls);
        char *comma = strchr(first, ',');
        if (comma)
            *comma = '\0';
        snprintf(c->initial_cluster, sizeof c->initial_cluster, "%s=%s", c->name, first);
    }
    if (check_urls("listen-client-urls", c->listen_client_urls, err, errlen) ||
        check_urls("advertise-client-urls", c->advertise_client_urls, err, errlen) ||
        check_urls("listen-peer-urls", c->listen_peer_urls, err, errlen) ||
        check_urls("initial-advertise-peer-urls", c->initial_advertise_peer_urls, err, errlen))
        return CONFIG_ERROR;
    if (parse_cluster(c, err, errlen) != 0)
        return CONFIG_ERROR;
    if (c->heartbeat_interval_ms == 0) {
        snprintf(err, errlen, "--heartbeat-interval must be > 0");
        return CONFIG_ERROR;
    }
    if (c->election_timeout_ms < 5 * c->heartbeat_interval_ms) {
        snprintf(err, errlen,
                 "--election-timeout[%ums] should be at least as 5 times as "
                 "--heartbeat-interval[%ums]",
                 c->election_timeout_ms, c->heartbeat_interval_ms);
        return CONFIG_ERROR;
    }
    if (c->election_timeout_ms > 50000) {
        snprintf(err, errlen,
                 "--election-timeout[%ums] is too long, and should be set less than 50000ms",
                 c->election_timeout_ms);
        return CONFIG_ERROR;
    }
    if (c->max_request_bytes == 0 || c->max_request_bytes > (64u << 20)) {
        snprintf(err, errlen, "--max-request-bytes must be between 1 and 67108864");
        return CONFIG_ERROR;
    }
    if (config_parse_retention(c->auto_compaction_retention,
                               strcmp(c->auto_compaction_mode, "revision") == 0) < 0) {
        snprintf(err, errlen, "--auto-compaction-retention: invalid value \"%s\"",
                 c->auto_compaction_retention);
        return CONFIG_ERROR;
    }
    if (strcmp(c->auto_compaction_mode, "periodic") != 0 &&
        strcmp(c->auto_compaction_mode, "revision") != 0) {
        snprintf(err, errlen,
                 "--auto-compaction-mode: invalid value \"%s\" (want periodic or revision)",
                 c->auto_compaction_mode);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}
