/*
 * msgcodec.h: the wire format of cord's peer connections.
 *
 * Everything on a peer TCP connection is a frame:
 *
 *     offset  size  field
 *     0       4     magic "CRDP"
 *     4       1     version (MSGCODEC_VERSION)
 *     5       1     kind (enum msgcodec_frame_kind)
 *     6       2     reserved, zero
 *     8       4     payload length, little endian (<= the receiver's limit)
 *     12      4     CRC-32C of bytes 0..11 followed by the payload
 *     16      ...   payload
 *
 * Payloads:
 *   HELLO / HELLO_ACK   cluster_id u64, from u64, to u64 (little endian), then optionally
 *                       the sender's advertised peer URL: u16 LE length (1..255), the bytes
 *                       (printable ASCII). cord sends it in HELLO, not in HELLO_ACK.
 *   REJECT              reason u32, cluster_id u64, from u64, to u64 (the rejecter's view)
 *   MSG                 one raft_msg, compact encoding:
 *       u8 type, u8 flags (bit0 pre_vote, bit1 reject, bit2 force, bit3 done,
 *       bit4 conf present, bit5 entries present, bit6 data present; bit7 zero),
 *       u16 LE presence mask of the twelve u64 fields (from, to, term,
 *       log_index, log_term, index, commit, hint_index, hint_term, context,
 *       offset, snapshot_size; bits 12..15 zero), then each present field as
 *       a LEB128 varint (a present field is never zero);
 *       conf:    u8 n_voters, u8 n_voters_out, u8 n_learners, then the ids (varints)
 *       entries: varint n, then per entry varint term, varint index, u8 type,
 *                varint len, len bytes
 *       data:    varint len, len bytes (raft_msg.len / raft_msg.data)
 *       and nothing after that.
 *
 * Decoding never trusts its input: every length is checked against the bytes
 * that remain, counts are bounded, varints must be minimal and fit in 64 bits,
 * reserved bits must be zero, and the message must be structurally valid
 * (known type, from/to non-zero, entries only in APPEND/PROPOSE, data only in
 * SNAPSHOT, entry types known, conf counts <= RAFT_MAX_MEMBERS with non-zero,
 * distinct ids). Semantic checks (terms, indexes) are raft_step()'s job.
 *
 * Lifetime: a decoded raft_msg points into the payload buffer it was decoded
 * from (entry data, snapshot chunk data) and into the msgcodec_scratch it was
 * given (the entries array). It is valid while both are unchanged.
 *
 * Errors: functions return MSGCODEC_OK (0), MSGCODEC_INCOMPLETE (> 0, only
 * msgcodec_frame_parse) or a negative MSGCODEC_E* code (msgcodec_strerror()).
 */
#ifndef CORD_TRANSPORT_MSGCODEC_H
#define CORD_TRANSPORT_MSGCODEC_H

#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

#define MSGCODEC_MAGIC      "CRDP"
#define MSGCODEC_VERSION    1
#define MSGCODEC_HEADER_LEN 16
#define MSGCODEC_HELLO_LEN  24
#define MSGCODEC_REJECT_LEN 28

enum msgcodec_frame_kind {
    MSGCODEC_FRAME_HELLO = 1,     /* first frame of a connection, dialer -> listener */
    MSGCODEC_FRAME_HELLO_ACK = 2, /* listener accepted the hello */
    MSGCODEC_FRAME_REJECT = 3,    /* listener refused the hello; it closes next */
    MSGCODEC_FRAME_MSG = 4,       /* one raft message */
};

enum {
    MSGCODEC_OK = 0,
    MSGCODEC_INCOMPLETE = 1,  /* frame_parse: need more bytes (header so far is sane) */
    MSGCODEC_EMAGIC = -1,     /* not a cord peer frame */
    MSGCODEC_EVERSION = -2,   /* unknown version */
    MSGCODEC_ETOOLARGE = -3,  /* payload longer than the limit / buffer too small */
    MSGCODEC_ECRC = -4,       /* checksum mismatch */
    MSGCODEC_EMALFORMED = -5, /* payload does not decode */
    MSGCODEC_ENOMEM = -6,     /* allocation failed */
    MSGCODEC_EINVAL = -7,     /* encode: the message is not structurally valid */
};

/* Reasons carried by a REJECT frame. */
enum msgcodec_reject_reason {
    MSGCODEC_REJECT_CLUSTER_MISMATCH = 1, /* different cluster id */
    MSGCODEC_REJECT_WRONG_MEMBER = 2,     /* the dialer addressed another member id */
    MSGCODEC_REJECT_BAD_HELLO = 3,        /* malformed hello */
};

const char *msgcodec_strerror(int err);
const char *msgcodec_reject_reason_name(uint32_t reason);

/* ----------------------------------------------------------------- frames */

/* A parsed frame: payload points into the buffer given to msgcodec_frame_parse. */
typedef struct msgcodec_frame {
    uint8_t kind;
    uint32_t payload_len;
    const uint8_t *payload;
    size_t frame_len; /* header + payload: bytes to consume */
} msgcodec_frame;

/*
 * msgcodec_frame_parse: look at the bytes received so far.
 * Takes: buf/avail (may be short), the largest payload accepted.
 * Returns: MSGCODEC_OK with *f filled when a whole valid frame is at buf;
 * MSGCODEC_INCOMPLETE when more bytes are needed and nothing seen so far is
 * wrong (the header is checked as soon as it is complete, so garbage is
 * refused without waiting for a bogus length); MSGCODEC_EMAGIC,
 * MSGCODEC_EVERSION, MSGCODEC_ETOOLARGE, MSGCODEC_EMALFORMED (reserved bits,
 * unknown kind), MSGCODEC_ECRC.
 */
int msgcodec_frame_parse(const uint8_t *buf, size_t avail, uint32_t max_payload, msgcodec_frame *f);

/*
 * msgcodec_frame_seal: write the header for a payload already placed at
 * buf + MSGCODEC_HEADER_LEN (payload_len bytes), computing the CRC.
 */
void msgcodec_frame_seal(uint8_t *buf, uint8_t kind, uint32_t payload_len);

/* ----------------------------------------------------------- raft messages */

/* Size of the MSG payload for m, or 0 if m is not structurally valid
 * (see above) or the payload would exceed UINT32_MAX. */
size_t msgcodec_msg_len(const raft_msg *m);

/*
 * msgcodec_encode_msg_frame: write a whole MSG frame for m into buf.
 * Takes: m (its data/entries are read, not kept), buf of cap bytes.
 * Returns: MSGCODEC_OK with *frame_len set, MSGCODEC_EINVAL (m is not
 * structurally valid, e.g. SNAPSHOT len > 0 with data NULL), or
 * MSGCODEC_ETOOLARGE (cap < MSGCODEC_HEADER_LEN + msgcodec_msg_len(m)).
 */
int msgcodec_encode_msg_frame(const raft_msg *m, uint8_t *buf, size_t cap, size_t *frame_len);

/* Reusable storage for decoded entries arrays. Zero-initialise; free with
 * msgcodec_scratch_free. It grows to the largest message seen, which the
 * frame size limit bounds. */
typedef struct msgcodec_scratch {
    raft_entry *entries;
    uint32_t cap;
} msgcodec_scratch;

void msgcodec_scratch_free(msgcodec_scratch *s);

/*
 * msgcodec_decode_msg: decode a MSG payload.
 * Takes: the payload (len bytes), out, scratch.
 * Returns: MSGCODEC_OK (out points into payload and scratch; see Lifetime),
 * MSGCODEC_EMALFORMED, MSGCODEC_ENOMEM. On error *out is zeroed.
 */
int msgcodec_decode_msg(const uint8_t *payload, size_t len, raft_msg *out, msgcodec_scratch *s);

/* ------------------------------------------------------------- handshakes */

#define MSGCODEC_URL_MAX 255

typedef struct msgcodec_hello {
    uint64_t cluster_id;
    uint64_t from; /* sender's member id */
    uint64_t to;   /* the member id the sender believes it is talking to */
    char url[MSGCODEC_URL_MAX + 1]; /* sender's peer URL, "" when not sent */
} msgcodec_hello;

/* Whether url[0..n) may go in a HELLO: 1..MSGCODEC_URL_MAX bytes of printable ASCII, no
 * space. */
bool msgcodec_url_ok(const char *url, size_t n);
/* Bytes of the HELLO or HELLO_ACK frame for h (header included). */
size_t msgcodec_hello_frame_len(const msgcodec_hello *h);
/* Writes a HELLO or HELLO_ACK frame of msgcodec_hello_frame_len(h) bytes (a url longer
 * than MSGCODEC_URL_MAX is not sent). */
size_t msgcodec_encode_hello_frame(uint8_t kind, const msgcodec_hello *h, uint8_t *buf);
/* Returns MSGCODEC_OK or MSGCODEC_EMALFORMED (wrong length, zero ids, a URL that is empty,
 * too long or not printable ASCII). */
int msgcodec_decode_hello(const uint8_t *payload, size_t len, msgcodec_hello *h);

typedef struct msgcodec_reject {
    uint32_t reason;     /* enum msgcodec_reject_reason */
    uint64_t cluster_id; /* the rejecting member's cluster id */
    uint64_t from;       /* the rejecting member's id */
    uint64_t to;         /* the dialer's id as the hello claimed it */
} msgcodec_reject;

/* Writes a REJECT frame (MSGCODEC_HEADER_LEN + MSGCODEC_REJECT_LEN bytes). */
size_t msgcodec_encode_reject_frame(const msgcodec_reject *r, uint8_t *buf);
int msgcodec_decode_reject(const uint8_t *payload, size_t len, msgcodec_reject *r);

#endif
