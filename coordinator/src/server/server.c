/* The service's wiring: the loop, the listener, signals, the sweep timer, and
 * the order things start and stop in. May not touch frames, sagas or SQL. */
#include "server/server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "saga/error.h"
#include "server/server_int.h"
#include "server/timerq.h"
#include "store/migrate.h"
#include "wire/addr.h"

#define PEERS_REFRESH_EVERY 20 /* sweeps: every ten heartbeats */

/* Splits "HOST:PORT" (IPv6 as "[::1]:7420") into a socket address. Names
 * other than "localhost" are not resolved: a DNS lookup would block. */
static int parse_addr(const char *text, struct sockaddr_storage *out)
{
    char host[64];
    int port;
    if (wire_addr_split(text, host, sizeof(host), &port) != 0)
        return SAGA_EINVAL;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (strchr(host, ':') != NULL)
        return uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0 ? 0 : SAGA_EINVAL;
    return uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0 ? 0 : SAGA_EINVAL;
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct server *srv = container_of((uv_tcp_t *)listener, struct server, listener);
    if (status < 0) {
        log_warn(NULL, "listener.error", "error=%s", uv_strerror(status));
        return;
    }
    int err = session_accept(srv, listener);
    if (err != 0)
        log_warn(NULL, "listener.accept_failed", "error=%s", saga_err_name(err));
}

static void free_peers(struct server *srv)
{
    for (size_t i = 0; i < srv->n_peers; i++)
        free(srv->peers[i]);
    free(srv->peers);
    srv->peers = NULL;
    srv->n_peers = 0;
}

static void on_instances(const struct store_instances *r, int status)
{
    struct server *srv = r->data;
    srv->peers_busy = 0;
    if (status != 0 || srv->stopping)
        return;
    char **peers = calloc(r->n + 1, sizeof(*peers));
    if (peers == NULL)
        return;
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        peers[n] = strdup(r->items[i].address);
        if (peers[n] != NULL)
            n++;
    }
    free_peers(srv);
    srv->peers = peers;
    srv->n_peers = n;
}

static void refresh_peers(struct server *srv)
{
    if (srv->peers_busy)
        return;
    if (store_instances(srv->store, 3 * srv->cfg.lease_ms, on_instances, srv) == 0)
        srv->peers_busy = 1;
}

static void on_sweep(uv_timer_t *t)
{
    struct server *srv = container_of(t, struct server, sweep);
    session_sweep(srv, timerq_wall_ms(NULL));
    if (++srv->sweeps % PEERS_REFRESH_EVERY == 0)
        refresh_peers(srv);
}

/* ---- shutdown: stop accepting, finish writes, release leases, close ---------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_store_closed(void *data)
{
    struct server *srv = data;
    srv->store = NULL;
    runtime_close(&srv->runtime);
    uv_close((uv_handle_t *)&srv->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&srv->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&srv->sigint, on_handle_closed);
}

static void on_unregistered(const struct store_count *c, int status)
{
    struct server *srv = c->data;
    if (status != 0)
        log_warn(NULL, "instance.unregister_failed", "error=%s", saga_err_name(status));
    session_close_all(srv);
    store_close(srv->store, on_store_closed, srv);
}

static void on_runtime_down(void *data)
{
    struct server *srv = data;
    if (store_unregister(srv->store, on_unregistered, srv) != 0) {
        struct store_count c = {.data = srv};
        on_unregistered(&c, SAGA_EUNAVAIL);
    }
}

static void server_stop(struct server *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    log_info(NULL, "server.stopping", NULL);
    uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
    uv_timer_stop(&srv->sweep);
    runtime_shutdown(srv->runtime, on_runtime_down, srv);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct server *srv = sig->data;
    log_info(NULL, "server.signal", "signal=%d", signum);
    if (srv->stopping) {
        log_warn(NULL, "server.exit_now", "reason=\"second signal\"");
        exit(1);
    }
    server_stop(srv);
}

/* ---- start ------------------------------------------------------------------------------- */

static void on_registered(const struct store_count *c, int status)
{
    struct server *srv = c->data;
    if (status != 0)
        log_warn(NULL, "instance.register_failed", "error=%s", saga_err_name(status));
    refresh_peers(srv);
}

static int listen_on(struct server *srv)
{
    struct sockaddr_storage addr;
    if (parse_addr(srv->cfg.listen, &addr) != 0) {
        log_error(NULL, "server.bad_listen", "listen=%s hint=\"HOST:PORT with a numeric host\"",
                  srv->cfg.listen);
        return SAGA_EINVAL;
    }
    int rc = uv_tcp_init(&srv->loop, &srv->listener);
    if (rc == 0)
        rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 512, on_connection);
    if (rc != 0) {
        log_error(NULL, "server.listen_failed", "listen=%s error=\"%s\"", srv->cfg.listen,
                  uv_strerror(rc));
        return SAGA_EIO;
    }
    /* Port 0: say which one the kernel chose. */
    struct sockaddr_storage bound = {0};
    int len = sizeof(bound);
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len) != 0)
        bound.ss_family = AF_UNSPEC;
    char addr_text[96];
    conn_addr_text(&bound, addr_text, sizeof(addr_text));
    srv->advertise = strdup(srv->cfg.advertise ? srv->cfg.advertise : addr_text);
    if (srv->advertise == NULL)
        return SAGA_ENOMEM;
    log_info(NULL, "server.listening", "address=%s", addr_text);
    return 0;
}

int server_run(const struct server_config *cfg)
{
    struct server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return 1;
    srv->cfg = *cfg;
    int rc = 1;
    char why[512];
    int err = store_schema_check(cfg->database_url, why, sizeof(why));
    if (err != 0) {
        log_error(NULL, "server.schema", "error=%s detail=%s", saga_err_name(err),
                  log_quote((char[600]){0}, 600, why));
        fprintf(stderr, "sagad: %s\n", why);
        free(srv);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&srv->loop) != 0) {
        free(srv);
        return 1;
    }
    if (listen_on(srv) != 0)
        goto out_loop;
    if (cfg->instance_id != NULL && cfg->instance_id[0] != '\0') {
        srv->coordinator_id = strdup(cfg->instance_id);
    } else {
        char id[128];
        snprintf(id, sizeof(id), "sagad@%s", srv->advertise);
        srv->coordinator_id = strdup(id);
    }
    if (srv->coordinator_id == NULL)
        goto out_loop;

    struct store_config sc = {
        .database_url = cfg->database_url,
        .owner = srv->coordinator_id,
        .pool_size = cfg->pool_size,
        .lease_ms = cfg->lease_ms,
        .unavailable_ms = cfg->db_unavailable_ms,
    };
    if (store_open(&srv->loop, &sc, &srv->store) != 0)
        goto out_loop;
    if (registry_new(&srv->registry) != 0)
        goto out_loop;
    struct runtime_config rc_cfg = {
        .coordinator_id = srv->coordinator_id,
        .max_payload = cfg->max_payload,
        .lease_ms = cfg->lease_ms,
        .max_wait_ms = cfg->max_wait_ms,
        .seed = timerq_wall_ms(NULL) ^ (uint64_t)uv_os_getpid(),
    };
    if (runtime_new(&srv->loop, &rc_cfg, srv->store, srv->registry, &srv->runtime) != 0)
        goto out_loop;

    uv_timer_init(&srv->loop, &srv->sweep);
    /* Twice a heartbeat: a peer silent for three heartbeats is found within
     * half a heartbeat more. */
    uint64_t sweep_ms = cfg->heartbeat_ms / 2 ? cfg->heartbeat_ms / 2 : 1;
    uv_timer_start(&srv->sweep, on_sweep, sweep_ms, sweep_ms);
    uv_signal_init(&srv->loop, &srv->sigterm);
    uv_signal_init(&srv->loop, &srv->sigint);
    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);

    if (store_register(srv->store, srv->advertise, on_registered, srv) != 0)
        log_warn(NULL, "instance.register_refused", NULL);
    runtime_start_leases(srv->runtime);
    log_info(NULL, "server.ready", "instance=%s advertise=%s", srv->coordinator_id, srv->advertise);

    uv_run(&srv->loop, UV_RUN_DEFAULT);
    rc = 0;
    log_info(NULL, "server.stopped", NULL);
    registry_free(&srv->registry);
    free_peers(srv);
    if (uv_loop_close(&srv->loop) != 0)
        log_warn(NULL, "server.handles_left", NULL);
    free(srv->coordinator_id);
    free(srv->advertise);
    free(srv);
    return rc;

out_loop:
    log_error(NULL, "server.start_failed", NULL);
    /* Nothing has run yet: close what was opened and let the loop release it. */
    if (srv->store != NULL)
        store_close(srv->store, NULL, NULL);
    if (srv->runtime != NULL)
        runtime_close(&srv->runtime);
    if (uv_is_active((uv_handle_t *)&srv->listener) || srv->advertise != NULL)
        uv_close((uv_handle_t *)&srv->listener, NULL);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&srv->loop);
    registry_free(&srv->registry);
    free(srv->coordinator_id);
    free(srv->advertise);
    free(srv);
    return 1;
}
