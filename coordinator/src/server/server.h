/* The coordinator service: one libuv loop wiring the listener, sessions, the
 * runtime, the registry and the store, in that one direction. */
#ifndef SAGAD_SERVER_H
#define SAGAD_SERVER_H

#include <stdint.h>

struct server_config {
    const char *database_url;
    const char *listen;      /* HOST:PORT to bind */
    const char *advertise;   /* HOST:PORT peers and participants reach us at; NULL = listen */
    const char *instance_id; /* NULL = "sagad@" + advertise */
    const char *auth_token;  /* NULL or "" = no token required */
    uint32_t heartbeat_ms;   /* participants ping this often; silent 3x = dead */
    uint32_t max_frame;      /* bytes */
    uint32_t max_payload;    /* bytes of a saga input or a step output */
    uint32_t lease_ms;
    uint32_t max_wait_ms;
    unsigned pool_size;
    uint32_t db_unavailable_ms; /* how long a write waits for the database */
};

/* Runs the service until SIGTERM or SIGINT, then stops accepting, finishes the
 * writes in flight, releases its leases and returns 0; or returns 1 after
 * logging why it could not start. */
int server_run(const struct server_config *cfg);

#endif
