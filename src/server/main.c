/*
 * main.c: the cord member process. Flags and environment as etcd's (see
 * config.h and --help); SIGTERM and SIGINT shut down cleanly.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/log.h"
#include "server/config.h"
#include "server/member.h"

static member *the_member;
static uv_signal_t sig_term, sig_int;
static uv_timer_t watchdog;

static void on_stopped(void *arg)
{
    uv_loop_t *loop = arg;
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&watchdog, NULL);
    (void)loop;
}

static void on_signal(uv_signal_t *h, int signum)
{
    log_info("received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    if (the_member) {
        member *m = the_member;
        the_member = NULL;
        member_stop(m, on_stopped, h->loop);
    }
}

/* A member whose storage failed, or that was removed, must not keep serving: exit non-zero.
 * Not at the first sight but one period later: the answers it already produced (a removed
 * leader's answer to the MemberRemove that removed it) go out meanwhile, while it takes no
 * new request. */
static void on_watchdog(uv_timer_t *t)
{
    static bool seen;
    if (the_member && member_failed(the_member)) {
        if (!seen) {
            seen = true;
            return;
        }
        log_error("member failed; exiting");
        exit(1);
    }
    (void)t;
}

int restore_main(const char *file, const config *cfg);

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    config cfg;
    char err[1024];
    /* cord snapshot restore FILE [flags]: a new data directory from a backup */
    if (argc >= 3 && strcmp(argv[1], "snapshot") == 0 && strcmp(argv[2], "restore") == 0) {
        if (argc < 4) {
            fprintf(stderr,
                    "usage: cord snapshot restore FILE [--data-dir DIR] [--name NAME] ...\n");
            return 2;
        }
        const char *file = argv[3]; /* config_parse takes it as the program name */
        int rc = config_parse(&cfg, argc - 3, argv + 3, err, sizeof err);
        if (rc != CONFIG_OK) {
            if (rc == CONFIG_EXIT)
                return 0;
            fprintf(stderr, "cord: %s\n", err);
            return 2;
        }
        return restore_main(file, &cfg);
    }
    int rc = config_parse(&cfg, argc, argv, err, sizeof err);
    if (rc == CONFIG_EXIT)
        return 0;
    if (rc != CONFIG_OK) {
        fprintf(stderr, "cord: %s\n", err);
        return 2;
    }
    log_set_level(cfg.log_level);
#ifdef CORD_UNSAFE_LOCAL_READS
    log_warn("built with CORD_UNSAFE_LOCAL_READS: linearizable reads are answered locally "
             "and can be stale (a test build; never use it for data)");
#endif
    uv_loop_t *loop = uv_default_loop();
    cord_error e;
    if (member_start(loop, &cfg, &the_member, &e) != 0) {
        log_error("cannot start: %s", e.msg);
        return 1;
    }
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_timer_init(loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 200, 200);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    log_info("stopped");
    return 0;
}
