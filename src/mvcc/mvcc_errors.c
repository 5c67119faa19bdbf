/*
 * mvcc_errors.c — error codes, etcd's messages, gRPC mapping.
 */
#include "mvcc/mvcc_internal.h"

#include <errno.h>
#include <stdio.h>

const char *mvcc_strerror(int code)
{
    switch (code) {
    case MVCC_OK:
        return "ok";
    case MVCC_ECOMPACTED:
        return "mvcc: required revision has been compacted";
    case MVCC_EFUTURE:
        return "mvcc: required revision is a future revision";
    case MVCC_ENOSPACE:
        return "etcdserver: mvcc: database space exceeded";
    case MVCC_EEMPTYKEY:
        return "etcdserver: key is not provided";
    case MVCC_EKEYNOTFOUND:
        return "etcdserver: key not found";
    case MVCC_EVALUEPROVIDED:
        return "etcdserver: value is provided";
    case MVCC_ELEASEPROVIDED:
        return "etcdserver: lease is provided";
    case MVCC_ETOOMANYOPS:
        return "etcdserver: too many operations in txn request";
    case MVCC_EDUPKEY:
        return "etcdserver: duplicate key given in txn request";
    case MVCC_ELEASENOTFOUND:
        return "etcdserver: requested lease not found";
    case MVCC_ETOOLARGE:
        return "etcdserver: request is too large";
    case MVCC_EINVAL:
        return "mvcc: invalid argument";
    case MVCC_ERESULT:
        return "mvcc: result exceeds the response size limit";
    case MVCC_EBUSY:
        return "mvcc: operation not allowed in the current batch state";
    case MVCC_EBATCH:
        return "mvcc: the apply batch failed earlier and must be aborted";
    case MVCC_EIO:
        return "mvcc: storage error";
    case MVCC_ECORRUPT:
        return "mvcc: database is corrupt or not a cord store";
    case MVCC_ENOMEM:
        return "mvcc: out of memory";
    default:
        return "unknown error";
    }
}

int mvcc_grpc_status(int code, const char **message)
{
    const char *msg = mvcc_strerror(code);
    int grpc = 13; /* Internal */
    switch (code) {
    case MVCC_OK:
        grpc = 0;
        break;
    case MVCC_ECOMPACTED:
        grpc = 11; /* OutOfRange */
        msg = "etcdserver: mvcc: required revision has been compacted";
        break;
    case MVCC_EFUTURE:
        grpc = 11;
        msg = "etcdserver: mvcc: required revision is a future revision";
        break;
    case MVCC_ENOSPACE:
        grpc = 8; /* ResourceExhausted */
        break;
    case MVCC_EEMPTYKEY:
    case MVCC_EKEYNOTFOUND:
    case MVCC_EVALUEPROVIDED:
    case MVCC_ELEASEPROVIDED:
    case MVCC_ETOOMANYOPS:
    case MVCC_EDUPKEY:
    case MVCC_ETOOLARGE:
    case MVCC_EINVAL:
        grpc = 3; /* InvalidArgument */
        break;
    case MVCC_ELEASENOTFOUND:
        grpc = 5; /* NotFound */
        break;
    case MVCC_ERESULT:
        grpc = 8;
        break;
    case MVCC_EBUSY:
    case MVCC_EBATCH:
        grpc = 14; /* Unavailable */
        break;
    case MVCC_ECORRUPT:
        grpc = 15; /* DataLoss */
        break;
    default:
        grpc = 13;
        break;
    }
    if (message)
        *message = msg;
    return grpc;
}

int mvcc_seterr(cord_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        err->sys_errno = 0;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

int mvcc_fail(cord_error *err, int code)
{
    return mvcc_seterr(err, code, "%s", mvcc_strerror(code));
}

int mvcc_lmdb_fail(cord_error *err, int mdb_rc, const char *what)
{
    int code = MVCC_EIO;
    if (mdb_rc == MDB_MAP_FULL)
        code = MVCC_ENOSPACE;
    else if (mdb_rc == MDB_CORRUPTED || mdb_rc == MDB_PAGE_NOTFOUND || mdb_rc == MDB_INVALID ||
             mdb_rc == MDB_VERSION_MISMATCH)
        code = MVCC_ECORRUPT;
    else if (mdb_rc == ENOMEM)
        code = MVCC_ENOMEM;
    int rc;
    if (code == MVCC_ENOSPACE)
        rc = mvcc_seterr(err, code, "%s (%s: %s)", mvcc_strerror(code), what, mdb_strerror(mdb_rc));
    else
        rc = mvcc_seterr(err, code, "mvcc: %s: %s", what, mdb_strerror(mdb_rc));
    if (err && mdb_rc > 0)
        err->sys_errno = mdb_rc; /* LMDB passes errno values through */
    return rc;
}

bool mvcc_is_storage_error(int code)
{
    return code == MVCC_EIO || code == MVCC_ECORRUPT || code == MVCC_ENOMEM;
}
