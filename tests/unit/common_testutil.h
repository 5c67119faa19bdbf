/*
 * common_testutil.h: helpers for the unit tests of common, wal and snap:
 * temporary directories under $TMPDIR (or /tmp) and file surgery.
 * They assert (cmocka) instead of returning errors.
 */
#ifndef CORD_TESTS_COMMON_TESTUTIL_H
#define CORD_TESTS_COMMON_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Create a fresh directory "cord-test-XXXXXX" under $TMPDIR or /tmp. */
void tu_mkdtemp(char *out, size_t cap);

/* Remove a directory tree (no error if missing). */
void tu_rmrf(const char *path);

/* The running test's temporary directory: cmocka setup/teardown that make it fresh and
 * remove it again. */
extern char tu_tmp[1024];
int tu_tmp_setup(void **state);
int tu_tmp_teardown(void **state);
/* A cmocka test that runs in a fresh tu_tmp directory. */
#define TU_TMP_TEST(f) cmocka_unit_test_setup_teardown(f, tu_tmp_setup, tu_tmp_teardown)

/* Whole file into a malloc'ed buffer (*len receives the size). */
uint8_t *tu_read_file(const char *path, size_t *len);

/* Replace the file's contents (truncating) with buf. */
void tu_write_file(const char *path, const void *buf, size_t len);

/* Flip one bit / set a range to a byte value / truncate. */
void tu_flip_bit(const char *path, uint64_t off, int bit);
void tu_fill_range(const char *path, uint64_t off, uint64_t len, uint8_t value);
void tu_truncate(const char *path, uint64_t size);

/* Number of directory entries whose name ends with suffix. */
size_t tu_count_suffix(const char *dir, const char *suffix);

/* Path of the n-th (0-based, sorted by name) entry ending with suffix; 0 if none. */
int tu_nth_with_suffix(const char *dir, const char *suffix, size_t n, char *out, size_t cap);

/* File mode bits (st_mode & 07777). */
unsigned tu_mode(const char *path);

/* A deterministic xorshift generator for tests. */
uint64_t tu_rand(uint64_t *state);

#endif
