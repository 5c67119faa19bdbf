/*
 * config.h: a member's settings, from etcd-named flags and CORD_* variables.
 *
 * Every flag --some-name has an environment variable CORD_SOME_NAME; a flag
 * on the command line wins over the variable, which wins over the default.
 * Flags take "--flag=value" or "--flag value".
 */
#ifndef CORD_SERVER_CONFIG_H
#define CORD_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

#define CONFIG_STR_MAX     1024
#define CONFIG_MAX_MEMBERS 16
#define CONFIG_MAX_URLS    8

typedef struct config_url {
    char scheme[8]; /* "http" */
    char host[256]; /* "127.0.0.1", "localhost" */
    uint16_t port;
} config_url;

typedef struct config_peer {
    char name[128];
    char url[CONFIG_STR_MAX]; /* first peer URL */
} config_peer;

typedef struct config {
    char name[128];
    char data_dir[CONFIG_STR_MAX];
    char listen_client_urls[CONFIG_STR_MAX];
    char advertise_client_urls[CONFIG_STR_MAX];
    char listen_peer_urls[CONFIG_STR_MAX];
    char initial_advertise_peer_urls[CONFIG_STR_MAX];
    char initial_cluster[4 * CONFIG_STR_MAX];
    bool initial_cluster_state_new; /* "new" (true) or "existing" */
    char initial_cluster_token[256];
    uint64_t snapshot_count;
    uint64_t log_memory_bytes;
    uint32_t heartbeat_interval_ms;
    uint32_t election_timeout_ms;
    uint64_t quota_backend_bytes;
    uint64_t max_request_bytes;
    char auto_compaction_mode[16]; /* "periodic" or "revision" */
    char auto_compaction_retention[64];
    enum log_level log_level;
    bool strict_reconfig_check; /* refuse membership changes that could cost the quorum */

    /* derived */
    config_peer peers[CONFIG_MAX_MEMBERS]; /* from initial_cluster */
    uint32_t n_peers;
} config;

enum config_result { CONFIG_OK = 0, CONFIG_ERROR = 1, CONFIG_EXIT = 2 /* --help/--version done */ };

/* Fills c from defaults, the environment and argv. On CONFIG_ERROR, err
 * holds a one-line reason naming the flag. */
int config_parse(config *c, int argc, char **argv, char *err, size_t errlen);

/* Parses an --auto-compaction-retention: a count of revisions in revision
 * mode; in periodic mode a plain number of hours or a Go duration ("30m",
 * "1h30m", "10s"), in milliseconds. Returns -1 when malformed. */
int64_t config_parse_retention(const char *s, bool revision_mode);

/* Parses "http://host:port". Returns 0 or -1. */
int config_url_parse(const char *s, config_url *u);

/* Writes the usage text to stdout. */
void config_usage(const char *prog);

#endif
