/*
 * gateway.h: etcd's JSON gateway (grpc-gateway v1 with JSONPb{OrigName:true},
 * as etcd 3.4 serves it) on the client port's HTTP/1.1 side.
 *
 * Each route takes a POST whose body is the JSON of the gRPC request message
 * (an empty body is the empty message), runs the same gRPC method through a
 * virtual call (api_call_virtual_new) and answers 200 with the JSON of the
 * response message, or grpc-gateway's error body
 *   {"error":MSG,"code":GRPC_CODE,"message":MSG}
 * with HTTPStatusFromCode's status (400 for JSON that does not decode).
 * /v3/watch answers with a chunked stream of lines {"result":WatchResponse}
 * until the client goes away (the server never half-closes the watch);
 * /v3/lease/keepalive with such lines, one per request in the body, then ends.
 *
 * The routes' ud must be the member (member.c sets it); they use m->api.
 */
#ifndef CORD_SERVER_GATEWAY_H
#define CORD_SERVER_GATEWAY_H

#include <stddef.h>

#include "api/http_server.h"

#define GATEWAY_N_ROUTES 33

/* The gateway's HTTP/1.1 routes (ud NULL: the caller sets it to the member). */
extern const api_http_route gateway_routes[GATEWAY_N_ROUTES];

#endif
