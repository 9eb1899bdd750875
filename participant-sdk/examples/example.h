/* example.h: the plumbing the three example participants share (the command
 * line, the database pool and tables, the handlers, running until SIGTERM).
 * What makes each service itself (its tables, its effect and its
 * compensation) stays in its own file: inventory.c, payment.c, shipping.c.
 *
 * A service fills one struct example_service and its main() is:
 *
 *   struct example_options opts;
 *   int rc = example_parse_options(argc, argv, &svc, &opts);
 *   if (rc != 0)
 *       return rc == 1 ? 0 : rc;   (1: --help was printed)
 *   return example_run(&svc, &opts);
 */
#ifndef SAGA_EXAMPLE_H
#define SAGA_EXAMPLE_H

#include <saga/pg.h>

/* What every example takes on its command line. */
struct example_options {
    const char *coordinator;  /* --coordinator, SAGA_COORDINATOR; default 127.0.0.1:7420 */
    const char *database_url; /* --database-url, SAGA_EXAMPLE_DATABASE_URL; required */
    unsigned threads;         /* --threads: handler threads and database connections (1..64, 4) */
};

/* One more option with a value that a service adds to those (payment's --limit). */
struct example_extra_option {
    const char *name;     /* "limit": given as --limit VALUE */
    const char *synopsis; /* " [--limit AMOUNT]": ends the usage's second line */
    const char *help;     /* its line in the usage, ending in \n */
    /* Reads the value: 0, or -1 after printing why it is refused (exit 2). */
    int (*parse)(const char *value, void *data);
    void *data;
};

/* A service, as the shared code needs to know it. */
struct example_service {
    /* "inventory": the participant's service name and the prefix of every line
     * it prints; the program is saga-example-NAME. */
    const char *name;
    /* Statements creating its tables when missing, run in order at start (one
     * instance at a time), NULL-terminated. */
    const char *const *tables;
    const char *operation;        /* the operation it serves: "reserve" */
    saga_pg_effect_fn action;     /* the forward effect, inside the barrier's transaction */
    saga_pg_effect_fn compensate; /* the compensating effect, likewise */
    void *data;                   /* handed to both effects */
    const char *serving;          /* the start-up line: "serving SERVING for HOST:PORT" */
    const struct example_extra_option *extra; /* NULL: none */
};

/* Reads the environment and the command line into *o. Returns 0 (run), 1
 * (--help was printed: exit 0) or 2 (a bad option, reported: exit 2). */
int example_parse_options(int argc, char **argv, const struct example_service *svc,
                          struct example_options *o);

/* Connects, creates the tables, registers svc->operation and serves it until
 * SIGTERM or SIGINT. Returns the exit status: 0 after a signal, 1 when it
 * could not start. */
int example_run(const struct example_service *svc, const struct example_options *o);

#endif
