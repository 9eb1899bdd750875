/* `sagad serve`: reads flags and SAGAD_* environment variables into a server
 * configuration and runs the service. Knows nothing of what the service does. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "engine/duration.h"
#include "saga/error.h"
#include "sagad/commands.h"
#include "server/server.h"

static void serve_usage(FILE *out)
{
    fprintf(out,
            "usage: sagad serve [OPTIONS]\n"
            "\n"
            "Runs the coordinator until SIGTERM or SIGINT. Every option has an environment\n"
            "variable; a flag wins over the variable.\n"
            "\n"
            "  --database-url URL  SAGAD_DATABASE_URL  the saga log (required)\n"
            "  --listen HOST:PORT  SAGAD_LISTEN        default 127.0.0.1:7420 (numeric host)\n"
            "  --advertise H:P     SAGAD_ADVERTISE     the address peers reach this one at\n"
            "  --instance-id ID    SAGAD_INSTANCE_ID   default sagad@ADVERTISE; keep it stable\n"
            "                                          so a restart takes its sagas back at once\n"
            "  --auth-token TOKEN  SAGAD_AUTH_TOKEN    shared secret every Hello must carry\n"
            "  --heartbeat DUR     SAGAD_HEARTBEAT     default 5s; silent 3x = peer dead\n"
            "  --lease DUR         SAGAD_LEASE         default 15s; how long a crashed\n"
            "                                          coordinator's sagas wait for a peer\n"
            "  --max-frame BYTES   SAGAD_MAX_FRAME     default 4194304\n"
            "  --max-payload BYTES SAGAD_MAX_PAYLOAD   default 1048576 (input or output)\n"
            "  --max-wait DUR      SAGAD_MAX_WAIT      default 5m; the longest Wait\n"
            "  --pool N            SAGAD_POOL          database connections, default 4\n"
            "  --db-wait DUR       SAGAD_DB_WAIT       default 5s; how long work waits for\n"
            "                                          an unreachable database\n"
            "  --log-level LEVEL   SAGAD_LOG_LEVEL     debug, info (default), warn, error\n"
            "  -h, --help\n");
}

static int parse_ms(const char *name, const char *text, uint32_t min, uint32_t *out)
{
    uint64_t ms;
    if (duration_parse(text, &ms) != 0 || ms < min || ms > UINT32_MAX) {
        fprintf(stderr, "sagad serve: %s: \"%s\" is not a duration like 500ms, 5s or 1m%s\n", name,
                text, min ? " (and not zero)" : "");
        return -1;
    }
    *out = (uint32_t)ms;
    return 0;
}

static int parse_count(const char *name, const char *text, unsigned long min, unsigned long max,
                       uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (text[0] == '\0' || text[0] == '-' || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "sagad serve: %s: \"%s\" is not a whole number from %lu to %lu\n", name,
                text, min, max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : fallback;
}

int cmd_serve(int argc, char **argv)
{
    enum {
        O_URL = 256,
        O_LISTEN,
        O_ADVERTISE,
        O_ID,
        O_TOKEN,
        O_HB,
        O_LEASE,
        O_FRAME,
        O_PAYLOAD,
        O_WAIT,
        O_POOL,
        O_DBWAIT,
        O_LOG
    };
    static const struct option longopts[] = {
        {"database-url", required_argument, NULL, O_URL},
        {"listen", required_argument, NULL, O_LISTEN},
        {"advertise", required_argument, NULL, O_ADVERTISE},
        {"instance-id", required_argument, NULL, O_ID},
        {"auth-token", required_argument, NULL, O_TOKEN},
        {"heartbeat", required_argument, NULL, O_HB},
        {"lease", required_argument, NULL, O_LEASE},
        {"max-frame", required_argument, NULL, O_FRAME},
        {"max-payload", required_argument, NULL, O_PAYLOAD},
        {"max-wait", required_argument, NULL, O_WAIT},
        {"pool", required_argument, NULL, O_POOL},
        {"db-wait", required_argument, NULL, O_DBWAIT},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *val[O_LOG - O_URL + 1];
    static const char *const env[] = {
        "SAGAD_DATABASE_URL", "SAGAD_LISTEN",    "SAGAD_ADVERTISE", "SAGAD_INSTANCE_ID",
        "SAGAD_AUTH_TOKEN",   "SAGAD_HEARTBEAT", "SAGAD_LEASE",     "SAGAD_MAX_FRAME",
        "SAGAD_MAX_PAYLOAD",  "SAGAD_MAX_WAIT",  "SAGAD_POOL",      "SAGAD_DB_WAIT",
        "SAGAD_LOG_LEVEL",
    };
    static const char *const defaults[] = {
        NULL,      "127.0.0.1:7420", NULL, NULL, NULL, "5s",   "15s",
        "4194304", "1048576",        "5m", "4",  "5s", "info",
    };
    for (int i = 0; i <= O_LOG - O_URL; i++)
        val[i] = env_or(env[i], defaults[i]);
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            serve_usage(stdout);
            return 0;
        }
        if (opt < O_URL || opt > O_LOG) {
            serve_usage(stderr);
            return 2;
        }
        val[opt - O_URL] = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "sagad serve: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (val[O_URL - O_URL] == NULL) {
        fprintf(stderr, "sagad serve: no database: pass --database-url or set "
                        "SAGAD_DATABASE_URL\n");
        return 2;
    }
    struct server_config cfg = {
        .database_url = val[O_URL - O_URL],
        .listen = val[O_LISTEN - O_URL],
        .advertise = val[O_ADVERTISE - O_URL],
        .instance_id = val[O_ID - O_URL],
        .auth_token = val[O_TOKEN - O_URL],
    };
    uint32_t pool;
    enum log_level level;
    if (parse_ms("--heartbeat", val[O_HB - O_URL], 10, &cfg.heartbeat_ms) ||
        parse_ms("--lease", val[O_LEASE - O_URL], 300, &cfg.lease_ms) ||
        parse_ms("--max-wait", val[O_WAIT - O_URL], 1, &cfg.max_wait_ms) ||
        parse_ms("--db-wait", val[O_DBWAIT - O_URL], 1, &cfg.db_unavailable_ms) ||
        parse_count("--max-frame", val[O_FRAME - O_URL], 1024, 64ul << 20, &cfg.max_frame) ||
        parse_count("--max-payload", val[O_PAYLOAD - O_URL], 1, 64ul << 20, &cfg.max_payload) ||
        parse_count("--pool", val[O_POOL - O_URL], 1, 64, &pool))
        return 2;
    cfg.pool_size = pool;
    if (cfg.max_payload + 4096u > cfg.max_frame) {
        fprintf(stderr, "sagad serve: --max-payload must leave room in --max-frame (4 KiB)\n");
        return 2;
    }
    if (log_level_parse(val[O_LOG - O_URL], &level) != 0) {
        fprintf(stderr, "sagad serve: --log-level: use debug, info, warn or error\n");
        return 2;
    }
    log_setup(level, stderr);
    return server_run(&cfg);
}
