/* sagactl list: recent sagas, newest first, one page or (--all) every page
 * the cursor leads to. Writes only to stdout and stderr. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sagactl/commands.h"
#include "sagactl/fmt.h"
#include "sagactl/json.h"

#define LIST_MAX_LIMIT 10000ul

struct list_opts {
    saga_list_filter_t filter;
    bool all;
    bool json;
};

static void list_usage(FILE *out)
{
    fprintf(out, "usage: sagactl list [--status S] [--definition NAME] [--since DUR]\n"
                 "                    [--limit N] [--cursor C | --all] [--json]\n"
                 "\n"
                 "Lists sagas, newest first, one page at a time. When there are more, the\n"
                 "last line says how to get the next page (--cursor); --all follows every page.\n"
                 "\n"
                 "  --status S         only sagas in state S: running, compensating, completed,\n"
                 "                     compensated, stuck, preparing, committing, aborting,\n"
                 "                     committed, aborted\n"
                 "  --definition NAME  only sagas of this definition\n"
                 "  --since DUR        only sagas started in the last DUR (90s, 15m, 2h, 7d)\n"
                 "  --limit N          at most N per page (default: the coordinator's, 100)\n"
                 "  --cursor C         the page after the one that printed C\n"
                 "  --all              every page\n"
                 "  --json             one document: {\"sagas\": [...], \"next_cursor\": \"...\"}\n"
                 "\n"
                 "exit status: 0 listed (even none), 1 error, 2 usage\n");
}

static int list_parse(struct ctl *ctl, int argc, char **argv, struct list_opts *o)
{
    static const struct option longopts[] = {{"status", required_argument, NULL, 's'},
                                             {"definition", required_argument, NULL, 'd'},
                                             {"since", required_argument, NULL, 'S'},
                                             {"limit", required_argument, NULL, 'l'},
                                             {"cursor", required_argument, NULL, 'c'},
                                             {"all", no_argument, NULL, 'a'},
                                             {"json", no_argument, NULL, 'j'},
                                             CTL_OPT_COMMON,
                                             {NULL, 0, NULL, 0}};
    int opt;
    uint64_t since;
    char *end;

    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (ctl_common_opt(ctl, opt, optarg))
            continue;
        switch (opt) {
        case 's':
            if (fmt_parse_status(optarg, &o->filter.status) != 0)
                return ctl_usage_error("list", "no state '%s'", optarg);
            break;
        case 'd':
            o->filter.definition = optarg;
            break;
        case 'S':
            if (fmt_parse_duration(optarg, &since) != 0)
                return ctl_usage_error("list", "--since wants a duration such as 15m, not '%s'",
                                       optarg);
            uint64_t now = ctl_now_ms();
            o->filter.created_since_ms = now > since ? now - since : 1;
            break;
        case 'l': {
            errno = 0;
            unsigned long n = strtoul(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || optarg[0] == '-' || n == 0 || n > LIST_MAX_LIMIT)
                return ctl_usage_error("list", "--limit wants a number from 1 to %lu, not '%s'",
                                       LIST_MAX_LIMIT, optarg);
            o->filter.limit = (uint32_t)n;
            break;
        }
        case 'c':
            o->filter.cursor = optarg;
            break;
        case 'a':
            o->all = true;
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            list_usage(stdout);
            return -1;
        default:
            return ctl_bad_option("list", opt, argc, argv);
        }
    }
    if (optind < argc)
        return ctl_usage_error("list", "unexpected '%s'", argv[optind]);
    return 0;
}

/* Adds one page to the table (people) or the array (--json). */
static int list_page(const struct ctl *ctl, const saga_result_t *r, uint64_t now, struct table *t,
                     json_t *arr)
{
    (void)ctl;
    for (size_t i = 0; i < saga_result_list_count(r); i++) {
        const saga_summary_t *s = saga_result_list_at(r, i);
        if (arr != NULL) {
            if (json_array_append_new(arr, ctl_json_summary(s)) != 0)
                return SAGA_ENOMEM;
            continue;
        }
        char def[200], ago[FMT_LEN], took[FMT_LEN];
        snprintf(def, sizeof(def), "%s v%u", s->definition, (unsigned)s->version);
        uint64_t end = saga_status_is_terminal(s->status) ? s->updated_ms : now;
        fmt_elapsed(end > s->created_ms ? end - s->created_ms : 0, took);
        const char *cells[6] = {s->saga_id_text,
                                def,
                                fmt_status_upper(s->status),
                                fmt_ago(now, s->created_ms, ago),
                                took,
                                s->error};
        enum fmt_color colors[6] = {FMT_NONE, FMT_NONE, fmt_status_color(s->status),
                                    FMT_DIM,  FMT_NONE, FMT_NONE};
        if (table_add(t, cells, colors) != 0)
            return SAGA_ENOMEM;
    }
    return 0;
}

int ctl_list(struct ctl *ctl, int argc, char **argv)
{
    struct list_opts o = {0};
    int rc = list_parse(ctl, argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? CTL_OK : rc;

    saga_client_t *client = ctl_client(ctl);
    saga_result_t *r = NULL;
    struct table *t = table_new(6);
    json_t *arr = o.json ? json_array() : NULL;
    char *cursor = o.filter.cursor != NULL ? strdup(o.filter.cursor) : NULL;
    int status = CTL_ERROR;
    uint64_t now = ctl_now_ms();
    if (client == NULL) {
        rc = CTL_ERROR; /* reported */
        goto done;
    }
    if (t == NULL || (o.json && arr == NULL) || (o.filter.cursor != NULL && cursor == NULL))
        goto done;
    if (table_add(t, (const char *[]){"ID", "DEFINITION", "STATE", "STARTED", "TOOK", "ERROR"},
                  (enum fmt_color[]){FMT_BOLD, FMT_BOLD, FMT_BOLD, FMT_BOLD, FMT_BOLD, FMT_BOLD}) !=
        0)
        goto done;

    for (;;) {
        o.filter.cursor = cursor;
        rc = saga_client_list_sync(client, &o.filter, &r);
        if (rc != 0) {
            ctl_fail(ctl, "list", "listing", rc, r);
            goto done;
        }
        if (list_page(ctl, r, now, t, arr) != 0)
            goto done;
        free(cursor);
        cursor = NULL;
        const char *next = saga_result_next_cursor(r);
        if (next[0] != '\0' && (cursor = strdup(next)) == NULL)
            goto done;
        saga_result_free(&r);
        if (!o.all || cursor == NULL)
            break;
    }

    if (o.json) {
        rc = ctl_json_print(
            json_pack("{s:O, s:s}", "sagas", arr, "next_cursor", cursor != NULL ? cursor : ""),
            stdout);
        if (rc != 0)
            goto done;
    } else {
        if (table_rows(t) > 1)
            table_print(t, stdout, 0, ctl->color);
        else
            printf("no sagas%s\n", o.filter.status != 0 || o.filter.definition != NULL ||
                                           o.filter.created_since_ms != 0
                                       ? " match"
                                       : " yet");
        if (cursor != NULL)
            printf("more: sagactl list --cursor %s (with the same filters), or --all\n", cursor);
    }
    status = CTL_OK;
done:
    if (status != CTL_OK && rc == 0)
        fprintf(stderr, "sagactl list: out of memory\n");
    free(cursor);
    json_decref(arr);
    table_free(&t);
    saga_result_free(&r);
    saga_client_free(&client);
    return status;
}
