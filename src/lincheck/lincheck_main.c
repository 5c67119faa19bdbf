/*
 * cord-lincheck: check a JSON-lines history for linearizability.
 *
 *   cord-lincheck [--max-steps N] [--max-memo N] [--quiet] FILE
 *
 * FILE "-" reads stdin. Exit status: 0 linearizable, 1 not linearizable,
 * 2 bad input or usage, 3 unknown (a search limit was reached).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lincheck/lincheck.h"

enum {
    EXIT_LINEARIZABLE = 0,
    EXIT_VIOLATION = 1,
    EXIT_BAD_INPUT = 2,
    EXIT_UNKNOWN = 3,
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cord-lincheck [--max-steps N] [--max-memo N] [--quiet] FILE\n"
            "  Check a JSON-lines history of key-value operations for linearizability.\n"
            "  FILE '-' reads standard input.\n"
            "  --max-steps N  search steps allowed per key (default %llu)\n"
            "  --max-memo N   memoized configurations allowed per key (default %llu)\n"
            "  --quiet        print nothing on standard output\n"
            "exit status: 0 linearizable, 1 not linearizable, 2 bad input, 3 unknown\n",
            (unsigned long long)LINCHECK_DEFAULT_MAX_STEPS,
            (unsigned long long)LINCHECK_DEFAULT_MAX_MEMO);
}

static int parse_count(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0) {
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    lincheck_options opt = {0};
    bool quiet = false;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--max-steps") == 0 || strcmp(a, "--max-memo") == 0) {
            uint64_t *dst = strcmp(a, "--max-steps") == 0 ? &opt.max_steps_per_key
                                                          : &opt.max_memo_entries_per_key;
            if (i + 1 >= argc || parse_count(argv[i + 1], dst) != 0) {
                fprintf(stderr, "cord-lincheck: %s needs a positive integer\n", a);
                return EXIT_BAD_INPUT;
            }
            i++;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return EXIT_LINEARIZABLE;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "cord-lincheck: unknown option %s\n", a);
            usage(stderr);
            return EXIT_BAD_INPUT;
        } else if (path != NULL) {
            fprintf(stderr, "cord-lincheck: only one FILE may be given\n");
            return EXIT_BAD_INPUT;
        } else {
            path = a;
        }
    }
    if (path == NULL) {
        usage(stderr);
        return EXIT_BAD_INPUT;
    }

    int status = EXIT_BAD_INPUT;
    lincheck_history *h = lincheck_history_new();
    lincheck_result *res = malloc(sizeof(*res));
    if (h == NULL || res == NULL) {
        fprintf(stderr, "cord-lincheck: out of memory\n");
        goto out;
    }
    char err[1024];
    int rc = lincheck_history_load_jsonl(h, path, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "cord-lincheck: %s\n", err);
        goto out;
    }
    rc = lincheck_check(h, &opt, res);
    if (rc != 0) {
        fprintf(stderr, "cord-lincheck: %s\n", lincheck_strerror(rc));
        goto out;
    }
    switch (res->verdict) {
    case LINCHECK_OK:
        status = EXIT_LINEARIZABLE;
        if (!quiet) {
            printf("linearizable: %llu ops over %llu keys (%llu checked, %llu search steps)\n",
                   (unsigned long long)res->ops_total, (unsigned long long)res->keys_checked,
                   (unsigned long long)res->ops_checked, (unsigned long long)res->steps);
        }
        break;
    case LINCHECK_VIOLATION:
        status = EXIT_VIOLATION;
        if (!quiet) {
            printf("NOT linearizable: %s\n", res->explanation);
        }
        break;
    default:
        status = EXIT_UNKNOWN;
        if (!quiet) {
            printf("UNKNOWN (search limit): %s\n", res->explanation);
        }
        break;
    }
out:
    free(res);
    lincheck_history_free(h);
    return status;
}
