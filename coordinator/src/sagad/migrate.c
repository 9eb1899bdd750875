/* `sagad migrate`: applies pending schema migrations, or lists them with
 * --status. A thin command line over store/migrate.h; it knows no SQL. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "saga/error.h"
#include "sagad/commands.h"
#include "store/migrate.h"

static void migrate_usage(FILE *out)
{
    fprintf(out, "usage: sagad migrate [--database-url URL] [--status] [--dir DIR]\n"
                 "\n"
                 "Applies the pending schema migrations, in order, each in its own transaction,\n"
                 "under an advisory lock (concurrent runs wait for each other). Refuses to run\n"
                 "when a migration already applied was changed since.\n"
                 "\n"
                 "  --database-url URL  the database (default: $SAGAD_DATABASE_URL)\n"
                 "  --status            list applied and pending migrations; change nothing\n"
                 "  --dir DIR           read NNNN_name.sql files from DIR instead of the ones\n"
                 "                      built into this binary\n"
                 "  -h, --help          this text\n");
}

int cmd_migrate(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"database-url", required_argument, NULL, 'u'},
        {"status", no_argument, NULL, 's'},
        {"dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = getenv("SAGAD_DATABASE_URL");
    const char *dir = NULL;
    int status_only = 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 's':
            status_only = 1;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'h':
            migrate_usage(stdout);
            return 0;
        default:
            migrate_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sagad migrate: unexpected argument '%s'\n", argv[optind]);
        migrate_usage(stderr);
        return 2;
    }
    if (!url || !*url) {
        fprintf(stderr, "sagad migrate: no database: pass --database-url or set "
                        "SAGAD_DATABASE_URL\n");
        return 2;
    }

    char err[1024] = "";
    struct migration_set set = {0};
    int rc = dir ? migration_set_load(&set, dir, err, sizeof(err))
                 : migration_set_builtin(&set, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "sagad migrate: %s\n", err[0] ? err : saga_strerror(rc));
        return 1;
    }
    if (status_only) {
        size_t pending = 0;
        rc = migrate_status(url, &set, stdout, &pending, err, sizeof(err));
        if (rc == 0)
            printf("%zu pending\n", pending);
    } else {
        rc = migrate_apply(url, &set, stdout, NULL, err, sizeof(err));
    }
    migration_set_free(&set);
    if (rc != 0) {
        fprintf(stderr, "sagad migrate: %s\n", err[0] ? err : saga_strerror(rc));
        return 1;
    }
    return 0;
}
