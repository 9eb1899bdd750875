/* The store's lifecycle: the connection pool, reconnects with backoff, the
 * flush before the loop sleeps, and the tick that enforces deadlines. Holds no
 * SQL (sql.c) and no batch logic (write.c); only pg.c talks to libpq. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/log.h"
#include "saga/error.h"
#include "store/store_int.h"

#define TICK_MS 100

static uint64_t rng_next(uint64_t *state)
{
    /* splitmix64 */
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

uint64_t store_token(struct store *s)
{
    /* Unique per store and never 0 (a new row's token): a random start,
     * counting up, within the positive range of a bigint. */
    uint64_t t = s->next_token++ & ((UINT64_C(1) << 62) - 1);
    return t ? t : s->next_token++;
}

int store_available(const struct store *s)
{
    for (unsigned i = 0; i < s->pool_size; i++) {
        if (s->conns[i].pg && pg_conn_is_ready(s->conns[i].pg))
            return 1;
    }
    return 0;
}

void store_get_stats(const struct store *s, struct store_stats *out)
{
    *out = s->stats;
    out->queued = write_queue_len(s);
    out->in_flight = s->in_flight_writes;
}

struct store_conn *store_pick_conn(struct store *s)
{
    struct store_conn *best = NULL;
    for (unsigned i = 0; i < s->pool_size; i++) {
        struct store_conn *sc = &s->conns[i];
        if (!sc->pg || !pg_conn_is_ready(sc->pg))
            continue;
        if (!best || pg_conn_in_flight(sc->pg) < pg_conn_in_flight(best->pg))
            best = sc;
    }
    return best;
}

int store_orphan_add(struct store *s, uint64_t token)
{
    if (s->closing)
        return SAGA_ECANCELED;
    return op_release_token(s, token);
}

/* While k write batches are in flight, another connection takes a batch only
 * once k * WRITES_PER_EXTRA_BATCH writes wait. An idle store sends at once;
 * under moderate load the writes gather into fewer, larger commits instead of
 * one small commit per connection, each paying the statement's and the
 * commit's fixed cost; under heavy load the queue is long and every
 * connection is busy anyway. Measured on two cores with sagas arriving 2,750
 * a second (tests/bench): against no threshold, 6 cut PostgreSQL CPU per saga
 * by 12 % and p99 from 45 to 31 ms; 16 cut CPU by a further 15 % and p99 to
 * 28 ms; 32 made p50 worse (11 -> 18 ms). */
#define WRITES_PER_EXTRA_BATCH 16

static void flush_now(struct store *s)
{
    ops_flush(s);
    size_t busy = 0;
    for (unsigned i = 0; i < s->pool_size; i++)
        busy += s->conns[i].batch != NULL;
    /* Idle connections first: a batch sent behind another statement (a claim
     * of expired sagas, a listing) waits for it to finish. */
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < s->pool_size && s->writes.head; i++) {
            struct store_conn *sc = &s->conns[i];
            if (!sc->pg || !pg_conn_is_ready(sc->pg) || sc->batch ||
                (pass == 0 && pg_conn_in_flight(sc->pg) > 0))
                continue;
            if (busy > 0 && s->writes.n < busy * WRITES_PER_EXTRA_BATCH)
                return;
            if (!write_flush_one(s, sc))
                return;
            busy++;
        }
    }
}

static void on_flush(uv_prepare_t *h)
{
    struct store *s = container_of(h, struct store, flush);
    uv_prepare_stop(h);
    s->flush_active = 0;
    if (!s->closing)
        flush_now(s);
}

void store_wake(struct store *s)
{
    if (s->closing || s->flush_active)
        return;
    s->flush_active = 1;
    uv_prepare_start(&s->flush, on_flush);
}

/* ---- connections ---- */

static void on_retry(uv_timer_t *t);

static void conn_schedule_retry(struct store_conn *sc)
{
    struct store *s = sc->s;
    if (sc->backoff_ms == 0)
        sc->backoff_ms = s->backoff_min_ms;
    else if (sc->backoff_ms < s->backoff_max_ms / 2)
        sc->backoff_ms *= 2;
    else
        sc->backoff_ms = s->backoff_max_ms;
    /* Spread the pool's attempts: 75% to 125% of the delay. */
    uint64_t d = sc->backoff_ms;
    d = d * 3 / 4 + rng_next(&s->rng) % (d / 2 + 1);
    uv_timer_start(&sc->retry, on_retry, d, 0);
}

static void on_retry(uv_timer_t *t)
{
    struct store_conn *sc = container_of(t, struct store_conn, retry);
    if (sc->s->closing)
        return;
    if (pg_conn_connect(sc->pg) != 0)
        conn_schedule_retry(sc);
}

static void on_conn_event(struct pg_conn *pg, int status)
{
    struct store_conn *sc = pg_conn_data(pg);
    struct store *s = sc->s;
    if (s->closing)
        return;
    if (status == 0) {
        if (sc->backoff_ms)
            log_info(NULL, "store.connected", "conn=%u", sc->index);
        else
            log_debug(NULL, "store.connected", "conn=%u", sc->index);
        sc->backoff_ms = 0;
        s->stats.connects++;
        store_wake(s);
        return;
    }
    s->stats.disconnects++;
    /* One warning per outage and connection; the retries after it are debug. */
    char q[300];
    const char *why = log_quote(q, sizeof(q), pg_conn_error(pg));
    if (sc->backoff_ms == 0)
        log_warn(NULL, "store.disconnected", "conn=%u error=%s reason=%s", sc->index,
                 saga_err_name(status), why);
    else
        log_debug(NULL, "store.disconnected", "conn=%u error=%s reason=%s", sc->index,
                  saga_err_name(status), why);
    if (status == SAGA_ESCHEMA && sc->backoff_ms == 0)
        log_error(NULL, "store.schema", "message=\"%s\"", saga_strerror(SAGA_ESCHEMA));
    conn_schedule_retry(sc);
}

/* ---- the tick ---- */

static void on_tick(uv_timer_t *t)
{
    struct store *s = container_of(t, struct store, tick);
    if (s->closing)
        return;
    uint64_t now = uv_now(s->loop);
    for (unsigned i = 0; i < s->pool_size; i++) {
        struct store_conn *sc = &s->conns[i];
        uint64_t oldest = pg_conn_oldest(sc->pg);
        if (oldest && now - oldest > s->io_timeout_ms) {
            log_warn(NULL, "store.io_timeout", "conn=%u waited_ms=%llu", sc->index,
                     (unsigned long long)(now - oldest));
            pg_conn_drop(sc->pg, SAGA_ETIMEDOUT);
        }
    }
    write_expire(s, now);
    ops_expire(s, now);
}

/* ---- open and close ---- */

static void store_free(struct store *s)
{
    busy_free(&s->busy);
    free(s->conns);
    free(s->url);
    free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct store *s = h->data;
    if (--s->handles_open > 0)
        return;
    void (*cb)(void *) = s->close_cb;
    void *data = s->close_data;
    store_free(s);
    if (cb)
        cb(data);
}

static void on_conn_closed(void *data)
{
    struct store *s = data;
    if (--s->handles_open > 0)
        return;
    void (*cb)(void *) = s->close_cb;
    void *d = s->close_data;
    store_free(s);
    if (cb)
        cb(d);
}

int store_open(uv_loop_t *loop, const struct store_config *cfg, struct store **out)
{
    *out = NULL;
    if (!loop || !cfg || !cfg->database_url || !*cfg->database_url || !cfg->owner || !*cfg->owner ||
        strlen(cfg->owner) >= STORE_OWNER_MAX)
        return SAGA_EINVAL;
    char why[256];
    if (pg_conninfo_check(cfg->database_url, why, sizeof(why)) != 0) {
        char q[300];
        log_error(NULL, "store.bad_url", "error=%s", log_quote(q, sizeof(q), why));
        return SAGA_EINVAL;
    }
    struct store *s = calloc(1, sizeof(*s));
    if (!s)
        return SAGA_ENOMEM;
    s->loop = loop;
    s->url = strdup(cfg->database_url);
    memcpy(s->owner, cfg->owner, strlen(cfg->owner) + 1);
    s->pool_size = cfg->pool_size ? cfg->pool_size : 4;
    s->batch_writes = cfg->batch_writes ? cfg->batch_writes : 256;
    s->batch_records = s->batch_writes * 32;
    s->queue_max = cfg->queue_max ? cfg->queue_max : 65536;
    s->unavailable_ms = cfg->unavailable_ms ? cfg->unavailable_ms : 5000;
    s->lease_ms = cfg->lease_ms ? cfg->lease_ms : 15000;
    s->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 5000;
    s->io_timeout_ms = cfg->io_timeout_ms ? cfg->io_timeout_ms : 30000;
    s->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : 100;
    s->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : 5000;
    if (s->backoff_max_ms < s->backoff_min_ms)
        s->backoff_max_ms = s->backoff_min_ms;
    s->conns = calloc(s->pool_size, sizeof(*s->conns));
    if (!s->url || !s->conns || busy_init(&s->busy, (size_t)s->pool_size * s->batch_writes) != 0)
        goto fail;
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;
    s->rng = seed;
    s->next_token = rng_next(&s->rng);
    do
        s->holder = rng_next(&s->rng) & ((UINT64_C(1) << 62) - 1);
    while (s->holder == 0);
    snprintf(s->holder_text, sizeof(s->holder_text), "%llu", (unsigned long long)s->holder);

    for (unsigned i = 0; i < s->pool_size; i++) {
        struct store_conn *sc = &s->conns[i];
        sc->s = s;
        sc->index = i;
        if (pg_conn_new(loop, s->url, store_stmts, STMT_COUNT_, s->connect_timeout_ms,
                        on_conn_event, sc, &sc->pg) != 0)
            goto fail_conns;
    }
    /* No failure past this point: handles are live. */
    uv_prepare_init(loop, &s->flush);
    s->flush.data = s;
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&s->tick);
    for (unsigned i = 0; i < s->pool_size; i++) {
        struct store_conn *sc = &s->conns[i];
        uv_timer_init(loop, &sc->retry);
        sc->retry.data = s;
        if (pg_conn_connect(sc->pg) != 0)
            conn_schedule_retry(sc);
    }
    *out = s;
    return 0;

fail_conns:
    for (unsigned i = 0; i < s->pool_size; i++) {
        if (s->conns[i].pg)
            pg_conn_close(s->conns[i].pg, NULL, NULL);
    }
    /* pg_conn_close frees on the loop; the store itself owns nothing else yet. */
fail:
    busy_free(&s->busy);
    free(s->conns);
    free(s->url);
    free(s);
    return SAGA_ENOMEM;
}

void store_close(struct store *s, void (*cb)(void *data), void *data)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->close_cb = cb;
    s->close_data = data;
    /* prepare + tick + per connection: its retry timer and the connection. */
    s->handles_open = 2 + 2 * s->pool_size;
    write_fail_all(s, SAGA_ECANCELED);
    ops_fail_all(s, SAGA_ECANCELED);
    for (unsigned i = 0; i < s->pool_size; i++) {
        struct store_conn *sc = &s->conns[i];
        uv_close((uv_handle_t *)&sc->retry, on_handle_closed);
        struct pg_conn *pg = sc->pg;
        /* Segments in flight end with SAGA_ECANCELED inside this call. */
        pg_conn_close(pg, on_conn_closed, s);
    }
    uv_close((uv_handle_t *)&s->flush, on_handle_closed);
    uv_close((uv_handle_t *)&s->tick, on_handle_closed);
}
