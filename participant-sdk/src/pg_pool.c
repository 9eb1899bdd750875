/* libsaga-pg: a small blocking pool of PostgreSQL connections for handlers
 * that run on the participant's thread pool. Touches only its own
 * connections; one mutex guards the free list. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "saga/pg.h"

struct saga_pg_pool {
    char *conninfo;
    unsigned size;
    unsigned opened; /* connections made so far (free or lent) */
    PGconn **idle;   /* free connections, `n_idle` of them */
    unsigned n_idle;
    pthread_mutex_t lock;
    pthread_cond_t freed;
};

saga_pg_pool_t *saga_pg_pool_new(const char *conninfo, unsigned size)
{
    if (conninfo == NULL || size == 0)
        return NULL;
    saga_pg_pool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    pool->size = size;
    pool->conninfo = strdup(conninfo);
    pool->idle = calloc(size, sizeof(*pool->idle));
    if (pool->conninfo == NULL || pool->idle == NULL)
        goto fail_mem;
    if (pthread_mutex_init(&pool->lock, NULL) != 0)
        goto fail_mem;
    if (pthread_cond_init(&pool->freed, NULL) != 0)
        goto fail_lock;
    return pool;
fail_lock:
    pthread_mutex_destroy(&pool->lock);
fail_mem:
    free(pool->idle);
    free(pool->conninfo);
    free(pool);
    return NULL;
}

PGconn *saga_pg_pool_get(saga_pg_pool_t *pool)
{
    PGconn *db = NULL;
    bool fresh = false;

    pthread_mutex_lock(&pool->lock);
    while (pool->n_idle == 0 && pool->opened == pool->size)
        pthread_cond_wait(&pool->freed, &pool->lock);
    if (pool->n_idle > 0) {
        db = pool->idle[--pool->n_idle];
    } else {
        pool->opened++; /* reserve the slot, connect outside the lock */
        fresh = true;
    }
    pthread_mutex_unlock(&pool->lock);

    if (fresh) {
        db = PQconnectdb(pool->conninfo);
        if (db == NULL || PQstatus(db) != CONNECTION_OK) {
            PQfinish(db);
            pthread_mutex_lock(&pool->lock);
            pool->opened--;
            pthread_cond_signal(&pool->freed);
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        return db;
    }
    if (PQstatus(db) != CONNECTION_OK) {
        PQreset(db); /* the server restarted, or the network broke */
        if (PQstatus(db) != CONNECTION_OK) {
            saga_pg_pool_put(pool, db); /* kept: the next get resets it again */
            return NULL;
        }
    }
    return db;
}

void saga_pg_pool_put(saga_pg_pool_t *pool, PGconn *db)
{
    if (db == NULL)
        return;
    /* A connection left inside a transaction would poison the next user. */
    if (PQstatus(db) == CONNECTION_OK && PQtransactionStatus(db) != PQTRANS_IDLE) {
        PGresult *res = PQexecParams(db, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0);
        PQclear(res);
    }
    pthread_mutex_lock(&pool->lock);
    pool->idle[pool->n_idle++] = db;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
}

void saga_pg_pool_free(saga_pg_pool_t **pool)
{
    if (pool == NULL || *pool == NULL)
        return;
    saga_pg_pool_t *p = *pool;
    for (unsigned i = 0; i < p->n_idle; i++)
        PQfinish(p->idle[i]);
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->lock);
    free(p->idle);
    free(p->conninfo);
    free(p);
    *pool = NULL;
}
