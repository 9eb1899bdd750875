/* sagactl start: starts a saga from a stored definition and, with --wait,
 * follows it to its end. Reads only the --input file it is named. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sagactl/commands.h"
#include "sagactl/fmt.h"
#include "sagactl/json.h"

/* One Wait request at most this long; the coordinator caps it too (its
 * --max-wait), and sagactl asks again until the saga ends. */
#define START_WAIT_SLICE_MS 60000u

struct start_opts {
    const char *name;
    uint32_t version;
    const char *input; /* --input: JSON text, or @FILE */
    const char *key;
    bool wait;
    uint64_t timeout_ms; /* 0: none */
    bool json;
};

static void start_usage(FILE *out)
{
    fprintf(out, "usage: sagactl start NAME [--version N] [--input JSON | --input @FILE]\n"
                 "                     [--key KEY] [--wait [--timeout DUR]] [--json]\n"
                 "\n"
                 "Starts a saga of the stored definition NAME and prints its id.\n"
                 "\n"
                 "  --version N      that version of the definition (default: the latest)\n"
                 "  --input JSON     the saga input, a JSON document; @FILE reads it from FILE\n"
                 "                   (@- from stdin); default: none\n"
                 "  --key KEY        idempotency key: starting again with the same key returns\n"
                 "                   the saga the first start made\n"
                 "  --wait           wait until the saga ends, then print its final state\n"
                 "  --timeout DUR    give up waiting after DUR (250ms, 30s, 5m, 1h)\n"
                 "  --json           one document: {saga_id, existed[, timed_out, saga]}\n"
                 "\n"
                 "exit status: 0 started (with --wait: COMPLETED or COMMITTED), 1 error,\n"
                 "2 usage, 3 COMPENSATED or ABORTED, 4 STUCK or --timeout passed\n");
}

static int start_parse(struct ctl *ctl, int argc, char **argv, struct start_opts *o)
{
    static const struct option longopts[] = {{"version", required_argument, NULL, 'v'},
                                             {"input", required_argument, NULL, 'i'},
                                             {"key", required_argument, NULL, 'k'},
                                             {"wait", no_argument, NULL, 'w'},
                                             {"timeout", required_argument, NULL, 't'},
                                             {"json", no_argument, NULL, 'j'},
                                             CTL_OPT_COMMON,
                                             {NULL, 0, NULL, 0}};
    int opt;
    char *end;

    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (ctl_common_opt(ctl, opt, optarg))
            continue;
        switch (opt) {
        case 'v': {
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || optarg[0] == '-' || v == 0 || v > 2147483647ul)
                return ctl_usage_error("start", "--version wants a number from 1, not '%s'",
                                       optarg);
            o->version = (uint32_t)v;
            break;
        }
        case 'i':
            o->input = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 'w':
            o->wait = true;
            break;
        case 't':
            if (fmt_parse_duration(optarg, &o->timeout_ms) != 0)
                return ctl_usage_error("start", "--timeout wants a duration such as 30s, not '%s'",
                                       optarg);
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            start_usage(stdout);
            return -1;
        default:
            return ctl_bad_option("start", opt, argc, argv);
        }
    }
    if (optind >= argc)
        return ctl_usage_error("start", "which definition? give its NAME");
    if (argc - optind > 1)
        return ctl_usage_error("start", "one NAME only; unexpected '%s'", argv[optind + 1]);
    if (o->timeout_ms != 0 && !o->wait)
        return ctl_usage_error("start", "--timeout goes with --wait");
    o->name = argv[optind];
    return 0;
}

/* Loads --input into *out (owned by the caller); checks that it is JSON. */
static int start_input(const struct start_opts *o, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (o->input == NULL)
        return 0;
    if (o->input[0] == '@') {
        if (ctl_read_file("start", o->input + 1, out, len) != 0)
            return CTL_ERROR;
    } else {
        *out = strdup(o->input);
        if (*out == NULL)
            return CTL_ERROR;
        *len = strlen(*out);
    }
    json_error_t err;
    json_t *doc = json_loadb(*out, *len, JSON_DECODE_ANY, &err);
    if (doc == NULL) {
        free(*out);
        *out = NULL;
        return ctl_usage_error("start", "--input is not JSON: %d:%d: %s", err.line, err.column,
                               err.text);
    }
    json_decref(doc);
    return 0;
}

/* Waits until the saga is terminal or STUCK, or the timeout passes. Returns
 * 0 with the last answer in *out, or the failure's code (*out holds it). */
static int start_wait(saga_client_t *c, const uint8_t id[SAGA_ID_LEN], uint64_t timeout_ms,
                      saga_result_t **out)
{
    uint64_t deadline = timeout_ms != 0 ? ctl_now_ms() + timeout_ms : 0;
    for (;;) {
        unsigned slice = START_WAIT_SLICE_MS;
        if (deadline != 0) {
            uint64_t now = ctl_now_ms();
            uint64_t left = deadline > now ? deadline - now : 1;
            if (left < slice)
                slice = (unsigned)left;
        }
        int rc = saga_client_wait_sync(c, id, slice, out);
        if (rc != 0)
            return rc;
        const saga_info_t *info = saga_result_info(*out);
        if (saga_status_is_terminal(info->status) || info->status == SAGA_STATUS_STUCK)
            return 0;
        if (deadline != 0 && ctl_now_ms() >= deadline)
            return 0;
        saga_result_free(out);
    }
}

int ctl_start(struct ctl *ctl, int argc, char **argv)
{
    struct start_opts o = {0};
    int rc = start_parse(ctl, argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? CTL_OK : rc;

    char *input = NULL;
    size_t input_len = 0;
    saga_client_t *client = NULL;
    saga_result_t *r = NULL;
    json_t *doc = NULL;
    int status = start_input(&o, &input, &input_len);
    if (status != 0)
        goto done;
    status = CTL_ERROR;
    if ((client = ctl_client(ctl)) == NULL)
        goto done;

    rc = saga_client_start_sync(client,
                                &(saga_start_request_t){.definition = o.name,
                                                        .version = o.version,
                                                        .input = input,
                                                        .input_len = input_len,
                                                        .idempotency_key = o.key},
                                &r);
    if (rc != 0) {
        ctl_fail(ctl, "start", o.name, rc, r);
        goto done;
    }
    uint8_t id[SAGA_ID_LEN];
    char id_text[SAGA_ID_TEXT_LEN];
    int existed = saga_result_existed(r);
    memcpy(id, saga_result_saga_id(r), SAGA_ID_LEN);
    saga_id_format(id, id_text);
    saga_result_free(&r);

    if (o.json) {
        doc = json_pack("{s:s, s:b}", "saga_id", id_text, "existed", existed);
        if (doc == NULL)
            goto done;
    } else {
        printf("%s\n", id_text);
        fflush(stdout);
        if (existed)
            fprintf(stderr, "sagactl start: key '%s' was used before: this is that saga\n", o.key);
    }
    if (!o.wait) {
        status = CTL_OK;
        goto print;
    }

    rc = start_wait(client, id, o.timeout_ms, &r);
    if (rc != 0) {
        ctl_fail(ctl, "start", id_text, rc, r);
        goto done;
    }
    /* A Wait's answer leaves the timeline out: show the whole saga. */
    saga_result_t *full = NULL;
    if (saga_client_get_sync(client, id, &full) == 0) {
        saga_result_free(&r);
        r = full;
    } else {
        saga_result_free(&full);
    }
    const saga_info_t *info = saga_result_info(r);
    bool ended = saga_status_is_terminal(info->status) || info->status == SAGA_STATUS_STUCK;
    status = ctl_exit_for(info->status);
    if (o.json) {
        if (json_object_set_new(doc, "timed_out", json_boolean(!ended)) != 0 ||
            json_object_set_new(doc, "saga", ctl_json_saga(info)) != 0)
            status = CTL_ERROR;
    } else {
        char took[FMT_LEN];
        const char *on = ctl->color ? fmt_color(fmt_status_color(info->status)) : "";
        const char *off = ctl->color ? fmt_reset() : "";
        uint64_t end = ended ? info->updated_ms : ctl_now_ms();
        fmt_elapsed(end > info->created_ms ? end - info->created_ms : 0, took);
        if (!ended)
            printf("still %s%s%s after %s (--timeout)", on, fmt_status_upper(info->status), off,
                   took);
        else
            printf("%s%s%s in %s", on, fmt_status_upper(info->status), off, took);
        if (info->error[0] != '\0')
            printf(": %s", info->error);
        printf("\n");
        if (info->status == SAGA_STATUS_STUCK)
            fprintf(stderr, "sagactl start: the saga needs an operator: sagactl show %s\n",
                    id_text);
    }
print:
    if (o.json && ctl_json_print(doc, stdout) != 0)
        status = CTL_ERROR;
    doc = NULL;
done:
    json_decref(doc);
    saga_result_free(&r);
    saga_client_free(&client);
    free(input);
    return status;
}
