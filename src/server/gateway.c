/*
 * gateway.c: etcd's JSON gateway on the client port (see gateway.h).
 *
 * One gw_req per HTTP request. It owns the virtual call until the call is
 * finished or the client goes away, and the HTTP request until it is ended.
 * Replies may arrive inside api_call_virtual_deliver (a serializable read, an
 * error found at once), so the dispatching code marks the request busy and
 * frees it only after the deliver returned.
 */
#include "server/gateway.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "api/pbjson.h"
#include "etcdserverpb/rpc.pb-c.h"
#include "server/member_internal.h"
#include "v3electionpb/v3election.pb-c.h"
#include "v3lockpb/v3lock.pb-c.h"

typedef struct gw_route {
    const char *http_path;
    const char *grpc_path;
    const ProtobufCMessageDescriptor *req_desc;
    const ProtobufCMessageDescriptor *resp_desc;
    bool streaming;  /* the response is a stream of {"result":...} lines */
    bool stays_open; /* the request side stays open after the body (etcd's watch) */
} gw_route;

/* Every route once: HTTP path, protobuf package, gRPC method (after "/package."), request and
 * response message (package__NAME__descriptor), streaming, stays_open. */
#define GW_ROUTES(X)                                                                               \
    X("/v3/kv/range", etcdserverpb, "KV/Range", range_request, range_response, false, false)       \
    X("/v3/kv/put", etcdserverpb, "KV/Put", put_request, put_response, false, false)               \
    X("/v3/kv/deleterange", etcdserverpb, "KV/DeleteRange", delete_range_request,                  \
      delete_range_response, false, false)                                                         \
    X("/v3/kv/txn", etcdserverpb, "KV/Txn", txn_request, txn_response, false, false)               \
    X("/v3/kv/compaction", etcdserverpb, "KV/Compact", compaction_request, compaction_response,    \
      false, false)                                                                                \
    X("/v3/lease/grant", etcdserverpb, "Lease/LeaseGrant", lease_grant_request,                    \
      lease_grant_response, false, false)                                                          \
    X("/v3/lease/revoke", etcdserverpb, "Lease/LeaseRevoke", lease_revoke_request,                 \
      lease_revoke_response, false, false)                                                         \
    X("/v3/kv/lease/revoke", etcdserverpb, "Lease/LeaseRevoke", lease_revoke_request,              \
      lease_revoke_response, false, false)                                                         \
    X("/v3/lease/timetolive", etcdserverpb, "Lease/LeaseTimeToLive", lease_time_to_live_request,   \
      lease_time_to_live_response, false, false)                                                   \
    X("/v3/kv/lease/timetolive", etcdserverpb, "Lease/LeaseTimeToLive",                            \
      lease_time_to_live_request, lease_time_to_live_response, false, false)                       \
    X("/v3/lease/leases", etcdserverpb, "Lease/LeaseLeases", lease_leases_request,                 \
      lease_leases_response, false, false)                                                         \
    X("/v3/kv/lease/leases", etcdserverpb, "Lease/LeaseLeases", lease_leases_request,              \
      lease_leases_response, false, false)                                                         \
    X("/v3/watch", etcdserverpb, "Watch/Watch", watch_request, watch_response, true, true)         \
    X("/v3/cluster/member/list", etcdserverpb, "Cluster/MemberList", member_list_request,          \
      member_list_response, false, false)                                                          \
    X("/v3/maintenance/status", etcdserverpb, "Maintenance/Status", status_request,                \
      status_response, false, false)                                                               \
    X("/v3/lease/keepalive", etcdserverpb, "Lease/LeaseKeepAlive", lease_keep_alive_request,       \
      lease_keep_alive_response, true, false)                                                      \
    X("/v3/cluster/member/add", etcdserverpb, "Cluster/MemberAdd", member_add_request,             \
      member_add_response, false, false)                                                           \
    X("/v3/cluster/member/remove", etcdserverpb, "Cluster/MemberRemove", member_remove_request,    \
      member_remove_response, false, false)                                                        \
    X("/v3/cluster/member/update", etcdserverpb, "Cluster/MemberUpdate", member_update_request,    \
      member_update_response, false, false)                                                        \
    X("/v3/cluster/member/promote", etcdserverpb, "Cluster/MemberPromote", member_promote_request, \
      member_promote_response, false, false)                                                       \
    X("/v3/maintenance/alarm", etcdserverpb, "Maintenance/Alarm", alarm_request, alarm_response,   \
      false, false)                                                                                \
    X("/v3/maintenance/defragment", etcdserverpb, "Maintenance/Defragment", defragment_request,    \
      defragment_response, false, false)                                                           \
    X("/v3/maintenance/hash", etcdserverpb, "Maintenance/Hash", hash_request, hash_response,       \
      false, false)                                                                                \
    X("/v3/maintenance/hashkv", etcdserverpb, "Maintenance/HashKV", hash_kvrequest,                \
      hash_kvresponse, false, false)                                                               \
    X("/v3/maintenance/transfer-leadership", etcdserverpb, "Maintenance/MoveLeader",               \
      move_leader_request, move_leader_response, false, false)                                     \
    X("/v3/maintenance/snapshot", etcdserverpb, "Maintenance/Snapshot", snapshot_request,          \
      snapshot_response, true, false)                                                              \
    X("/v3/lock/lock", v3lockpb, "Lock/Lock", lock_request, lock_response, false, false)           \
    X("/v3/lock/unlock", v3lockpb, "Lock/Unlock", unlock_request, unlock_response, false, false)   \
    X("/v3/election/campaign", v3electionpb, "Election/Campaign", campaign_request,                \
      campaign_response, false, false)                                                             \
    X("/v3/election/proclaim", v3electionpb, "Election/Proclaim", proclaim_request,                \
      proclaim_response, false, false)                                                             \
    X("/v3/election/leader", v3electionpb, "Election/Leader", leader_request, leader_response,     \
      false, false)                                                                                \
    X("/v3/election/observe", v3electionpb, "Election/Observe", leader_request, leader_response,   \
      true, false)                                                                                 \
    X("/v3/election/resign", v3electionpb, "Election/Resign", resign_request, resign_response,     \
      false, false)

#define GW_TABLE_ROW(path, pkg, method, req, resp, streaming, stays_open)                          \
    {path,      "/" #pkg "." method, &pkg##__##req##__descriptor, &pkg##__##resp##__descriptor,    \
     streaming, stays_open},
static const gw_route gw_table[] = {GW_ROUTES(GW_TABLE_ROW)};
_Static_assert(sizeof gw_table / sizeof gw_table[0] == GATEWAY_N_ROUTES,
               "GATEWAY_N_ROUTES is the number of GW_ROUTES");

typedef struct gw_req {
    const gw_route *route;
    api_http_req *req; /* NULL once ended */
    api_call *call;    /* NULL once closed */
    bool busy;         /* inside gw_dispatch: do not free yet */
    bool begun;        /* streaming: chunked response started */
    uint8_t *reply;    /* unary: the last reply message */
    size_t reply_len;
} gw_req;

/* ------------------------------------------------------------ helpers */

/* grpc-gateway v1.9 runtime.HTTPStatusFromCode (the version etcd 3.4 ships), by gRPC
 * code: OK 200, Canceled 408, Unknown 500, InvalidArgument 400, DeadlineExceeded 504,
 * NotFound 404, AlreadyExists 409, PermissionDenied 403, ResourceExhausted 429,
 * FailedPrecondition 400 (deliberately not 412), Aborted 409, OutOfRange 400,
 * Unimplemented 501, Internal 500, Unavailable 503, DataLoss 500, Unauthenticated 401. */
static int gw_http_status(int code)
{
    static const int http[17] = {200, 408, 500, 400, 504, 404, 409, 403, 429,
                                 400, 409, 400, 501, 500, 503, 500, 401};
    return code >= 0 && code <= 16 ? http[code] : 500;
}

/* Go's http.StatusText for the statuses above. */
static const char *gw_status_text(int http)
{
    static const struct {
        int code;
        const char *text;
    } t[] = {{200, "OK"},
             {400, "Bad Request"},
             {401, "Unauthorized"},
             {403, "Forbidden"},
             {404, "Not Found"},
             {408, "Request Timeout"},
             {409, "Conflict"},
             {429, "Too Many Requests"},
             {501, "Not Implemented"},
             {503, "Service Unavailable"},
             {504, "Gateway Timeout"}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].code == http)
            return t[i].text;
    return "Internal Server Error";
}

/* A JSON string as Go's encoding/json writes it (HTML-safe). Returns bytes written
 * (without NUL); out must hold 6 * strlen(s) + 3. */
static size_t gw_json_string(char *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            memcpy(o, "\\u00", 4);
            o += 4;
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    *o = 0;
    return (size_t)(o - out);
}

/* grpc-gateway's error body as etcd 3.4.23 writes it: {"error":MSG,"message":MSG,"code":N}
 * (code omitted when 0, as jsonpb omits defaults). Returns a malloc'ed string or NULL. */
static char *gw_error_body(int code, const char *msg, size_t *len)
{
    size_t n = strlen(msg);
    char *esc = malloc(6 * n + 3);
    char *out = malloc(2 * (6 * n + 3) + 64);
    if (!esc || !out) {
        free(esc);
        free(out);
        return NULL;
    }
    gw_json_string(esc, msg);
    int k;
    if (msg[0] && code)
        k = sprintf(out, "{\"error\":%s,\"message\":%s,\"code\":%d}", esc, esc, code);
    else if (code)
        k = sprintf(out, "{\"code\":%d}", code);
    else
        k = sprintf(out, "{\"error\":%s,\"message\":%s}", esc, esc);
    free(esc);
    *len = (size_t)k;
    return out;
}

/* grpc-gateway's stream error chunk:
 * {"error":{"grpc_code":N,"http_code":H,"message":MSG,"http_status":TEXT}}\n */
static char *gw_stream_error(int code, const char *msg, size_t *len)
{
    size_t n = strlen(msg);
    char *esc = malloc(6 * n + 3);
    char *out = malloc(6 * n + 160);
    if (!esc || !out) {
        free(esc);
        free(out);
        return NULL;
    }
    gw_json_string(esc, msg);
    int http = gw_http_status(code);
    int k = sprintf(out, "{\"error\":{\"grpc_code\":%d,\"http_code\":%d,", code, http);
    if (msg[0])
        k += sprintf(out + k, "\"message\":%s,", esc);
    k += sprintf(out + k, "\"http_status\":\"%s\"}}\n", gw_status_text(http));
    free(esc);
    *len = (size_t)k;
    return out;
}

/* Response headers etcd's client port adds to every gateway answer (its CORS
 * wrapper), and the gRPC response metadata grpc-gateway forwards on success. */
static void gw_add_headers(api_http_req *r, bool grpc_ok)
{
    (void)api_http_add_header(r, "Access-Control-Allow-Headers",
                              "accept, content-type, authorization");
    (void)api_http_add_header(r, "Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE");
    (void)api_http_add_header(r, "Access-Control-Allow-Origin", "*");
    if (grpc_ok)
        (void)api_http_add_header(r, "Grpc-Metadata-Content-Type", "application/grpc");
}

static void gw_respond_error(api_http_req *r, int code, const char *msg)
{
    gw_add_headers(r, false);
    size_t len = 0;
    char *body = gw_error_body(code, msg, &len);
    if (body)
        api_http_respond(r, gw_http_status(code), "application/json", body, len);
    else
        api_http_respond(r, 500, "application/json",
                         "{\"error\": \"failed to marshal error message\"}", 44);
    free(body);
}

/* The JSON of a packed response message (malloc'ed), or NULL. */
static char *gw_reply_json(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len,
                           size_t *out_len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, msg);
    if (!m)
        return NULL;
    char *json = NULL;
    int rc = pbjson_encode(m, &json, out_len);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc == PBJSON_OK ? json : NULL;
}

static void gw_free(gw_req *g)
{
    free(g->reply);
    free(g);
}

static void gw_maybe_free(gw_req *g)
{
    if (!g->busy && !g->req && !g->call)
        gw_free(g);
}

static void gw_close_call(gw_req *g)
{
    if (g->call) {
        api_call *c = g->call;
        g->call = NULL;
        api_call_virtual_close(c);
    }
}

/* ------------------------------------------------------------ unary */

static void gw_unary_message(void *ctx, const uint8_t *msg, size_t len)
{
    gw_req *g = ctx;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    if (len)
        memcpy(copy, msg, len);
    free(g->reply);
    g->reply = copy;
    g->reply_len = len;
}

static void gw_unary_finish(void *ctx, int status, const char *message)
{
    gw_req *g = ctx;
    gw_close_call(g);
    api_http_req *r = g->req;
    g->req = NULL;
    if (r) {
        if (status == 0 && g->reply) {
            size_t jl = 0;
            char *json = gw_reply_json(g->route->resp_desc, g->reply, g->reply_len, &jl);
            if (json) {
                gw_add_headers(r, true);
                api_http_respond(r, 200, "application/json", json, jl);
            } else
                gw_respond_error(r, 13, "gateway: cannot encode the response");
            pbjson_free(json);
        } else if (status == 0) {
            gw_respond_error(r, 13, "grpc: no response message");
        } else {
            gw_respond_error(r, status, message);
        }
    }
    gw_maybe_free(g);
}

static const api_virtual_ops gw_unary_ops = {.on_message = gw_unary_message,
                                             .on_finish = gw_unary_finish};

/* ------------------------------------------------------------ streaming */

static void gw_stream_write(gw_req *g, const char *data, size_t len)
{
    if (!g->req)
        return;
    if (!g->begun) {
        gw_add_headers(g->req, true);
        api_http_stream_begin(g->req, 200, "application/json");
        g->begun = true;
    }
    if (api_http_stream_write(g->req, data, len) != API_OK) {
        /* the client is gone or does not read: stop the watch */
        gw_close_call(g);
        api_http_req *r = g->req;
        g->req = NULL;
        api_http_stream_end(r);
    }
}

static void gw_stream_message(void *ctx, const uint8_t *msg, size_t len)
{
    gw_req *g = ctx;
    size_t jl = 0;
    char *json = gw_reply_json(g->route->resp_desc, msg, len, &jl);
    if (!json)
        return;
    /* runtime.ForwardResponseStream: {"result":MSG} then the JSONPb delimiter "\n" */
    char *line = malloc(jl + 13);
    if (line) {
        memcpy(line, "{\"result\":", 10);
        memcpy(line + 10, json, jl);
        memcpy(line + 10 + jl, "}\n", 2);
        gw_stream_write(g, line, jl + 12);
        free(line);
    }
    pbjson_free(json);
    gw_maybe_free(g);
}

static void gw_stream_finish(void *ctx, int status, const char *message)
{
    gw_req *g = ctx;
    gw_close_call(g);
    if (g->req) {
        if (status != 0) {
            size_t el = 0;
            char *err = gw_stream_error(status, message, &el);
            if (!g->begun) { /* nothing sent yet: the error decides the status */
                gw_add_headers(g->req, false);
                api_http_stream_begin(g->req, gw_http_status(status), "application/json");
                g->begun = true;
            }
            if (err)
                (void)api_http_stream_write(g->req, err, el);
            free(err);
        } else if (!g->begun) {
            gw_add_headers(g->req, true);
            api_http_stream_begin(g->req, 200, "application/json");
            g->begun = true;
        }
        api_http_req *r = g->req;
        g->req = NULL;
        api_http_stream_end(r);
    }
    gw_maybe_free(g);
}

/* What the HTTP client has not taken yet: paces the snapshot stream, which sends while
 * this is under its limit (the watch hub has limits of its own). */
static size_t gw_stream_pending(void *ctx)
{
    gw_req *g = ctx;
    return g->req ? api_http_stream_pending(g->req) : 0;
}

static const api_virtual_ops gw_stream_ops = {.on_message = gw_stream_message,
                                              .on_finish = gw_stream_finish,
                                              .pending_bytes = gw_stream_pending};

/* ------------------------------------------------------------ dispatch */

static void gw_on_http_close(api_http_req *r, void *ud)
{
    gw_req *g = ud;
    (void)r;
    gw_close_call(g);
    if (g->req) {
        api_http_req *req = g->req;
        g->req = NULL;
        if (g->begun)
            api_http_stream_end(req);
        else
            api_http_respond(req, 499, NULL, NULL, 0); /* dropped: the client is gone */
    }
    gw_maybe_free(g);
}

/* Splits a body into top-level JSON values (a stream of WatchRequests, as the
 * gateway's decoder reads them). Returns the length of the value starting at
 * *off (after whitespace), 0 at the end; *start gets its offset. */
static size_t gw_next_value(const char *s, size_t len, size_t *off, size_t *start)
{
    size_t i = *off;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    *start = i;
    if (i >= len) {
        *off = i;
        return 0;
    }
    int depth = 0;
    bool in_str = false;
    size_t j = i;
    for (; j < len; j++) {
        char c = s[j];
        if (in_str) {
            if (c == '\\')
                j++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']') {
            if (--depth <= 0) {
                j++;
                break;
            }
        } else if (depth == 0 && (c == ' ' || c == '\n' || c == '\r' || c == '\t')) {
            break;
        }
    }
    *off = j;
    return j - i;
}

static bool gw_blank(const uint8_t *b, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r')
            return false;
    return true;
}

/* Decodes one JSON value into a packed request. Returns 0, or fills err. */
static int gw_pack(const gw_route *rt, const char *json, size_t len, uint8_t **out, size_t *out_len,
                   char *err, size_t errlen)
{
    ProtobufCMessage *msg = NULL;
    int rc;
    if (gw_blank((const uint8_t *)json, len))
        rc = pbjson_decode(rt->req_desc, "{}", 2, &msg, err, errlen);
    else
        rc = pbjson_decode(rt->req_desc, json, len, &msg, err, errlen);
    if (rc != PBJSON_OK)
        return -1;
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        pbjson_message_free(msg);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    protobuf_c_message_pack(msg, buf);
    pbjson_message_free(msg);
    *out = buf;
    *out_len = n;
    return 0;
}

static void gw_handle(api_http_req *r, void *ud)
{
    member *m = ud;
    const char *path = api_http_path(r);
    const gw_route *rt = NULL;
    for (size_t i = 0; i < GATEWAY_N_ROUTES; i++)
        if (strcmp(gw_table[i].http_path, path) == 0) {
            rt = &gw_table[i];
            break;
        }
    if (!rt || !m || !m->api) {
        gw_respond_error(r, 12, "gateway: no such route");
        return;
    }
    size_t blen = 0;
    const char *body = (const char *)api_http_body(r, &blen);
    char err[256];

    /* Decode first: a bad body is answered before any call starts. Like the
     * gateway's json.Decoder, a unary call reads the first JSON value and
     * ignores what follows (empty body: the empty message); a watch reads
     * values until the end or the first one that does not decode. */
    uint8_t *reqs[64];
    size_t lens[64];
    size_t n_reqs = 0;
    size_t off = 0, start = 0, vl;
    if (!rt->streaming) {
        vl = body ? gw_next_value(body, blen, &off, &start) : 0;
        if (gw_pack(rt, vl ? body + start : "", vl, &reqs[0], &lens[0], err, sizeof err) != 0) {
            gw_respond_error(r, 3, err); /* status.Errorf(codes.InvalidArgument, ...) */
            return;
        }
        n_reqs = 1;
    } else {
        while (body && n_reqs < sizeof reqs / sizeof reqs[0] &&
               (vl = gw_next_value(body, blen, &off, &start)) > 0) {
            if (gw_pack(rt, body + start, vl, &reqs[n_reqs], &lens[n_reqs], err, sizeof err) != 0) {
                if (n_reqs == 0) { /* the stream fails before its first message */
                    gw_respond_error(r, 2, err);
                    return;
                }
                break;
            }
            n_reqs++;
        }
    }

    gw_req *g = calloc(1, sizeof *g);
    api_call *call = NULL;
    if (g) {
        g->route = rt;
        g->req = r;
        call = api_call_virtual_new(m->api, rt->grpc_path,
                                    rt->streaming ? &gw_stream_ops : &gw_unary_ops, g);
    }
    if (!call) {
        free(g);
        for (size_t i = 0; i < n_reqs; i++)
            free(reqs[i]);
        gw_respond_error(r, 14, "gateway: cannot start the call");
        return;
    }
    g->call = call;
    api_http_set_close_cb(r, gw_on_http_close, g);
    g->busy = true;
    for (size_t i = 0; i < n_reqs; i++) {
        if (g->call)
            api_call_virtual_deliver(g->call, reqs[i], lens[i]);
        free(reqs[i]);
    }
    /* unary: the client's side ends with its one message; a watch stays open
     * after the body (etcd's recvLoop ignores io.EOF) */
    if (!rt->stays_open && g->call)
        api_call_virtual_half_close(g->call);
    g->busy = false;
    gw_maybe_free(g);
}

#define GW_HTTP_ROUTE(path, pkg, method, req, resp, streaming, stays_open)                         \
    {"POST", path, gw_handle, NULL},
const api_http_route gateway_routes[GATEWAY_N_ROUTES] = {GW_ROUTES(GW_HTTP_ROUTE)};
