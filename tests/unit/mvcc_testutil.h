/*
 * mvcc_testutil.h — helpers shared by the mvcc tests: temp dirs, byte strings, LMDB
 * inspection.
 */
#ifndef CORD_MVCC_TEST_UTIL_H
#define CORD_MVCC_TEST_UTIL_H

#include "mvcc/mvcc.h"

#include <stddef.h>
#include <stdint.h>

/* Creates a fresh directory under $TMPDIR (or /tmp); returns a malloc'd path. Aborts on
 * failure. */
char *mvt_tmpdir(const char *tag);
/* Removes a directory tree (files and one level of subdirectories are enough here), then
 * frees the path. */
void mvt_rmrf(char *path);

/* A byte string of a C string (no NUL). */
mvcc_bytes mvt_b(const char *s);
/* Compares a byte string with a C string. */
int mvt_eq(mvcc_bytes b, const char *s);

/* Number of entries in a named database of the store's environment (-1 on error). */
long mvt_db_entries(mvcc_store *s, const char *name);

#endif
