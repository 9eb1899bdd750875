/* sagactl services, retry, abort and resolve: the connected participants and
 * the operator's commands, each confirmed with the state it led to. Writes
 * only to stdout and stderr. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sagactl/commands.h"
#include "sagactl/fmt.h"
#include "sagactl/json.h"

static int service_cmp(const void *a, const void *b)
{
    const saga_service_info_t *x = *(const saga_service_info_t *const *)a;
    const saga_service_info_t *y = *(const saga_service_info_t *const *)b;
    return strcmp(x->name, y->name);
}

static void services_usage(FILE *out)
{
    fprintf(out, "usage: sagactl services [--json]\n"
                 "\n"
                 "Lists the participants connected to the coordinator: per service, each\n"
                 "instance, the coordinator it is connected to, the commands it is running\n"
                 "now (of its max_in_flight; - for no limit) and its actions.\n"
                 "\n"
                 "  --json  one document: {\"services\": [{name, instances: [...]}]}\n"
                 "\n"
                 "exit status: 0 listed (even none), 1 error, 2 usage\n");
}

int ctl_services(struct ctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'}, CTL_OPT_COMMON, {NULL, 0, NULL, 0}};
    bool json = false;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (ctl_common_opt(ctl, opt, optarg))
            continue;
        if (opt == 'j') {
            json = true;
        } else if (opt == 'h') {
            services_usage(stdout);
            return CTL_OK;
        } else {
            return ctl_bad_option("services", opt, argc, argv);
        }
    }
    if (optind < argc)
        return ctl_usage_error("services", "unexpected '%s'", argv[optind]);

    saga_client_t *client = ctl_client(ctl);
    saga_result_t *r = NULL;
    struct table *t = NULL;
    json_t *arr = NULL;
    const saga_service_info_t **sorted = NULL;
    int status = CTL_ERROR;
    if (client == NULL)
        return CTL_ERROR;
    int rc = saga_client_services_sync(client, &r);
    if (rc != 0) {
        ctl_fail(ctl, "services", "listing", rc, r);
        goto done;
    }
    /* By name, so the output is the same from one run to the next. */
    size_t n = saga_result_service_count(r);
    sorted = calloc(n > 0 ? n : 1, sizeof(*sorted));
    if (sorted == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++)
        sorted[i] = saga_result_service_at(r, i);
    qsort(sorted, n, sizeof(*sorted), service_cmp);
    if (json) {
        if ((arr = json_array()) == NULL)
            goto oom;
        for (size_t i = 0; i < n; i++) {
            if (json_array_append_new(arr, ctl_json_service(sorted[i])) != 0)
                goto oom;
        }
        if (ctl_json_print(json_pack("{s:O}", "services", arr), stdout) != 0)
            goto oom;
        status = CTL_OK;
        goto done;
    }
    if (n == 0) {
        printf("no participants connected (start a service: see participant-sdk/examples/)\n");
        status = CTL_OK;
        goto done;
    }
    if ((t = table_new(5)) == NULL ||
        table_add(t, (const char *[]){"SERVICE", "INSTANCE", "COORDINATOR", "IN FLIGHT", "ACTIONS"},
                  (enum fmt_color[]){FMT_BOLD, FMT_BOLD, FMT_BOLD, FMT_BOLD, FMT_BOLD}) != 0)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        const saga_service_info_t *s = sorted[i];
        for (size_t k = 0; k < s->n_instances; k++) {
            const saga_instance_info_t *in = &s->instances[k];
            char flight[FMT_LEN], actions[512] = "";
            size_t used = 0;
            if (in->max_in_flight > 0)
                snprintf(flight, sizeof(flight), "%u/%u", (unsigned)in->in_flight,
                         (unsigned)in->max_in_flight);
            else
                snprintf(flight, sizeof(flight), "%u/-", (unsigned)in->in_flight);
            for (size_t a = 0; a < in->n_actions && used < sizeof(actions); a++) {
                int w = snprintf(actions + used, sizeof(actions) - used, "%s%s", a > 0 ? "," : "",
                                 in->actions[a]);
                if (w < 0)
                    break;
                used += (size_t)w;
            }
            const char *cells[5] = {k == 0 ? s->name : "", in->instance_id, in->coordinator_id,
                                    flight, actions};
            if (table_add(t, cells, NULL) != 0)
                goto oom;
        }
    }
    table_print(t, stdout, 0, ctl->color);
    status = CTL_OK;
    goto done;
oom:
    fprintf(stderr, "sagactl services: out of memory\n");
done:
    free(sorted);
    json_decref(arr);
    table_free(&t);
    saga_result_free(&r);
    saga_client_free(&client);
    return status;
}

/* ---- retry, abort, resolve ---------------------------------------------------------------------
 */

enum op_kind { OP_RETRY, OP_ABORT, OP_RESOLVE };

static const char *op_name(enum op_kind k)
{
    return k == OP_RETRY ? "retry" : k == OP_ABORT ? "abort" : "resolve";
}

static void op_usage(enum op_kind k, FILE *out)
{
    switch (k) {
    case OP_RETRY:
        fprintf(out, "usage: sagactl retry ID [--reason TEXT] [--json]\n"
                     "\n"
                     "Resumes a STUCK saga: each stuck step gets a fresh set of attempts of\n"
                     "the operation that got stuck. Fix the cause first (the step's error in\n"
                     "sagactl show says what it was).\n");
        break;
    case OP_ABORT:
        fprintf(out, "usage: sagactl abort ID [--reason TEXT] [--json]\n"
                     "\n"
                     "Stops a running saga going forward: it compensates what already ran\n"
                     "(2pc: aborts). Refused after its pivot step succeeded, after a 2pc\n"
                     "commit decision, and on a saga that has ended.\n");
        break;
    case OP_RESOLVE:
        fprintf(out, "usage: sagactl resolve ID --as completed|compensated [--reason TEXT] "
                     "[--json]\n"
                     "\n"
                     "Declares a STUCK saga finished by hand, once the operator has put the\n"
                     "services' data right outside sagad. 2pc sagas: --as committed|aborted.\n");
        break;
    }
    fprintf(out, "\n"
                 "  --reason TEXT  why, for the record: sagad logs it with the command\n"
                 "                 (default: \"by sagactl COMMAND as $USER\")\n"
                 "  --json         the saga after the command, as sagactl show --json\n"
                 "\n"
                 "Prints the saga's id and the state the command led to.\n"
                 "exit status: 0 done, 1 error (refused in this state: see sagactl show), 2 "
                 "usage\n");
}

static int send_op(saga_client_t *client, enum op_kind kind, const uint8_t id[SAGA_ID_LEN],
                   saga_status_t as, const char *reason, saga_result_t **r)
{
    switch (kind) {
    case OP_RETRY:
        return saga_client_retry_sync(client, id, reason, r);
    case OP_ABORT:
        return saga_client_abort_sync(client, id, reason, r);
    default:
        return saga_client_resolve_sync(client, id, as, reason, r);
    }
}

static int ctl_operate(struct ctl *ctl, enum op_kind kind, int argc, char **argv)
{
    static const struct option longopts[] = {{"reason", required_argument, NULL, 'r'},
                                             {"as", required_argument, NULL, 'a'},
                                             {"json", no_argument, NULL, 'j'},
                                             CTL_OPT_COMMON,
                                             {NULL, 0, NULL, 0}};
    const char *cmd = op_name(kind);
    const char *reason = NULL;
    saga_status_t as = SAGA_STATUS_UNKNOWN;
    bool json = false;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (ctl_common_opt(ctl, opt, optarg))
            continue;
        switch (opt) {
        case 'r':
            reason = optarg;
            break;
        case 'a':
            if (kind != OP_RESOLVE)
                return ctl_usage_error(cmd, "--as is for resolve");
            if (fmt_parse_status(optarg, &as) != 0 ||
                (as != SAGA_STATUS_COMPLETED && as != SAGA_STATUS_COMPENSATED &&
                 as != SAGA_STATUS_COMMITTED && as != SAGA_STATUS_ABORTED))
                return ctl_usage_error(cmd,
                                       "--as wants completed or compensated (2pc: committed or "
                                       "aborted), not '%s'",
                                       optarg);
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            op_usage(kind, stdout);
            return CTL_OK;
        default:
            return ctl_bad_option(cmd, opt, argc, argv);
        }
    }
    if (ctl_one_id_arg(cmd, argc, argv) != 0)
        return CTL_USAGE;
    if (kind == OP_RESOLVE && as == SAGA_STATUS_UNKNOWN)
        return ctl_usage_error(cmd, "say how it ended: --as completed or --as compensated");
    uint8_t id[SAGA_ID_LEN];
    if (ctl_parse_id(cmd, argv[optind], id) != 0)
        return CTL_USAGE;

    char why[256];
    if (reason == NULL) {
        const char *user = getenv("USER");
        snprintf(why, sizeof(why), "by sagactl %s%s%s", cmd, user != NULL ? " as " : "",
                 user != NULL ? user : "");
        reason = why;
    }
    saga_client_t *client = ctl_client(ctl);
    saga_result_t *r = NULL;
    int status = CTL_ERROR;
    if (client == NULL)
        return CTL_ERROR;
    int rc = send_op(client, kind, id, as, reason, &r);
    /* Another coordinator holds the saga: send the command there, once (its
     * answer is final even if the saga has moved again meanwhile). */
    struct ctl holder = *ctl;
    char address[256];
    const struct ctl *at = ctl;
    if (rc == SAGA_ESTATE && saga_result_holder(r)[0] != '\0') {
        snprintf(address, sizeof(address), "%s", saga_result_holder(r));
        holder.coordinator = address;
        at = &holder;
        fprintf(stderr, "sagactl %s: the saga is held by the coordinator at %s; sending it there\n",
                cmd, address);
        saga_result_free(&r);
        saga_client_free(&client);
        client = ctl_client(at);
        if (client == NULL)
            return CTL_ERROR;
        rc = send_op(client, kind, id, as, reason, &r);
    }
    if (rc != 0) {
        ctl_fail(at, cmd, argv[optind], rc, r);
        goto done;
    }
    if (json) {
        if (ctl_json_print(ctl_json_saga(saga_result_info(r)), stdout) != 0)
            goto done;
    } else {
        ctl_print_state(ctl, saga_result_info(r));
    }
    status = CTL_OK;
done:
    saga_result_free(&r);
    saga_client_free(&client);
    return status;
}

int ctl_retry(struct ctl *ctl, int argc, char **argv)
{
    return ctl_operate(ctl, OP_RETRY, argc, argv);
}

int ctl_abort(struct ctl *ctl, int argc, char **argv)
{
    return ctl_operate(ctl, OP_ABORT, argc, argv);
}

int ctl_resolve(struct ctl *ctl, int argc, char **argv)
{
    return ctl_operate(ctl, OP_RESOLVE, argc, argv);
}
