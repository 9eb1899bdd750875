/* What the service's own modules (server.c, session.c) share. Not for the
 * runtime or anything below it. */
#ifndef SAGAD_SERVER_INT_H
#define SAGAD_SERVER_INT_H

#include <uv.h>

#include "server/conn.h"
#include "server/registry.h"
#include "server/runtime.h"
#include "server/server.h"
#include "server/session.h"
#include "store/store.h"

struct server {
    uv_loop_t loop;
    struct server_config cfg;
    char *coordinator_id;
    char *advertise;
    struct store *store;
    struct registry *registry;
    struct runtime *runtime;
    uv_tcp_t listener;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_timer_t sweep; /* heartbeats, peer list */
    struct session *sessions;
    char **peers; /* live coordinators, for HelloOk */
    size_t n_peers;
    int peers_busy;
    unsigned sweeps;
    int stopping;
    int exit_code;
};

/* Checks participant sessions for silence (3 heartbeats) and closes the dead. */
void session_sweep(struct server *srv, uint64_t now_ms);

#endif
