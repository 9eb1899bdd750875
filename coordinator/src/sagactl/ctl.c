/* What sagactl's commands share: the client, failure reports that say what to
 * do, id parsing, exit codes. Writes only to stdout and stderr. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <getopt.h>

#include "saga/client.h"
#include "sagactl/commands.h"
#include "sagactl/fmt.h"

bool ctl_common_opt(struct ctl *ctl, int opt, const char *arg)
{
    switch (opt) {
    case 'C':
        ctl->coordinator = arg;
        return true;
    case 'T':
        ctl->token = arg;
        return true;
    default:
        return false;
    }
}

saga_client_t *ctl_client(const struct ctl *ctl)
{
    saga_client_t *c = saga_client_new(&(saga_client_options_t){
        .coordinator = ctl->coordinator,
        .auth_token = ctl->token,
        .label = "sagactl",
        .request_timeout_ms = 15000,
        .connect_timeout_ms = 3000,
    });
    if (c == NULL)
        fprintf(stderr,
                "sagactl: cannot create a client for '%s': check --coordinator "
                "(HOST:PORT[,HOST:PORT...])\n",
                ctl->coordinator);
    return c;
}

int ctl_fail(const struct ctl *ctl, const char *cmd, const char *what, int rc,
             const saga_result_t *r)
{
    const char *msg = r != NULL ? saga_result_error(r) : "";
    if (msg[0] == '\0')
        msg = saga_strerror(rc);

    switch (rc) {
    case SAGA_ECONNECT:
        fprintf(stderr,
                "sagactl %s: cannot reach the coordinator at %s: is sagad running? (sagad serve "
                "--help; --coordinator or SAGA_COORDINATOR name another)\n",
                cmd, ctl->coordinator);
        break;
    case SAGA_ETIMEDOUT:
        fprintf(stderr,
                "sagactl %s: the coordinator at %s did not answer in time: check its log, then "
                "try again\n",
                cmd, ctl->coordinator);
        break;
    case SAGA_ECLOSED:
        fprintf(stderr,
                "sagactl %s: the coordinator at %s closed the connection (%s): it may be "
                "shutting down; try again\n",
                cmd, ctl->coordinator, msg);
        break;
    case SAGA_EAUTH:
        fprintf(stderr,
                "sagactl %s: the coordinator at %s refused the token: set SAGA_AUTH_TOKEN (or "
                "--token) to the value of sagad's --auth-token\n",
                cmd, ctl->coordinator);
        break;
    case SAGA_EUNAVAIL:
    case SAGA_EDB:
        fprintf(stderr,
                "sagactl %s: %s: the coordinator cannot use its database right now (%s); try "
                "again when it is back (the sagad log says why)\n",
                cmd, what, msg);
        break;
    case SAGA_ENOTFOUND:
        fprintf(stderr, "sagactl %s: %s: %s (%s)\n", cmd, what, msg,
                strcmp(cmd, "start") == 0 ? "sagactl define FILE"
                                          : "sagactl list shows recent sagas");
        break;
    case SAGA_ESTATE:
        fprintf(stderr, "sagactl %s: %s: %s (sagactl show %s)\n", cmd, what, msg, what);
        break;
    case SAGA_EEXIST:
        fprintf(stderr,
                "sagactl %s: %s: %s; to store a changed definition, raise its \"version\"\n", cmd,
                what, msg);
        break;
    case SAGA_ENOSERVICE:
        fprintf(stderr,
                "sagactl %s: %s: %s (start that service; sagactl services lists the connected "
                "ones)\n",
                cmd, what, msg);
        break;
    case SAGA_EDEFINITION:
        fprintf(stderr, "sagactl %s: %s: the coordinator refused the definition:\n%s\n", cmd, what,
                msg);
        break;
    case SAGA_ETOOBIG:
        fprintf(stderr, "sagactl %s: %s: %s (the coordinator's limit is sagad's --max-payload)\n",
                cmd, what, msg);
        break;
    default:
        fprintf(stderr, "sagactl %s: %s: %s (%s)\n", cmd, what, msg, saga_err_name(rc));
        break;
    }
    return CTL_ERROR;
}

int ctl_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "sagactl %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (sagactl %s --help)\n", cmd);
    return CTL_USAGE;
}

int ctl_bad_option(const char *cmd, int opt, int argc, char **argv)
{
    /* getopt_long has moved optind past the offending word. */
    const char *word = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (opt == ':')
        return ctl_usage_error(cmd, "option '%s' needs a value", word);
    return ctl_usage_error(cmd, "unknown option '%s'", word);
}

int ctl_one_id_arg(const char *cmd, int argc, char **argv)
{
    if (optind >= argc)
        return ctl_usage_error(cmd, "which saga? give its ID");
    if (argc - optind > 1)
        return ctl_usage_error(cmd, "one ID only; unexpected '%s'", argv[optind + 1]);
    return 0;
}

int ctl_parse_id(const char *cmd, const char *text, uint8_t id[SAGA_ID_LEN])
{
    if (saga_id_parse(text, id) != 0)
        return ctl_usage_error(cmd, "'%s' is not a saga id (a UUID, as sagactl start prints)",
                               text);
    return 0;
}

int ctl_exit_for(saga_status_t status)
{
    switch (status) {
    case SAGA_STATUS_COMPLETED:
    case SAGA_STATUS_COMMITTED:
        return CTL_OK;
    case SAGA_STATUS_COMPENSATED:
    case SAGA_STATUS_ABORTED:
        return CTL_UNDONE;
    default:
        return CTL_STUCK; /* stuck, or still going when the wait ended */
    }
}

/* Definitions and inputs are far smaller; anything larger is a mistake. */
#define CTL_MAX_FILE (16u << 20)

int ctl_read_file(const char *cmd, const char *path, char **out, size_t *len)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *label = is_stdin ? "<stdin>" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    size_t cap = 4096, n = 0;
    char *buf = NULL;
    int rc = 0;

    if (f == NULL) {
        fprintf(stderr, "sagactl %s: %s: cannot open: %s\n", cmd, label, strerror(errno));
        return SAGA_EIO;
    }
    buf = malloc(cap);
    if (buf == NULL) {
        rc = SAGA_ENOMEM;
        goto done;
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= CTL_MAX_FILE) {
                fprintf(stderr, "sagactl %s: %s: larger than %u MiB\n", cmd, label,
                        CTL_MAX_FILE >> 20);
                rc = SAGA_ETOOBIG;
                goto done;
            }
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                rc = SAGA_ENOMEM;
                goto done;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "sagactl %s: %s: cannot read: %s\n", cmd, label, strerror(errno));
        rc = SAGA_EIO;
        goto done;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
done:
    if (rc == SAGA_ENOMEM)
        fprintf(stderr, "sagactl %s: %s: out of memory\n", cmd, label);
    free(buf);
    if (!is_stdin)
        fclose(f);
    return rc;
}

uint64_t ctl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ctl_print_state(const struct ctl *ctl, const saga_info_t *info)
{
    const char *on = ctl->color ? fmt_color(fmt_status_color(info->status)) : "";
    const char *off = ctl->color ? fmt_reset() : "";
    printf("%s %s%s%s", info->saga_id_text, on, fmt_status_upper(info->status), off);
    if (info->error[0] != '\0')
        printf(" (%s)", info->error);
    printf("\n");
}
