/* sagactl show and watch: one saga's state, steps and timeline, for people
 * (aligned, relative times, colour on a terminal) or as JSON. Writes only to
 * stdout and stderr. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sagactl/commands.h"
#include "sagactl/fmt.h"
#include "sagactl/json.h"

/* Longer inputs and details are cut on screen (--json has them whole). */
#define SHOW_MAX_TEXT 160

static void show_usage(FILE *out)
{
    fprintf(out, "usage: sagactl show ID [--json]\n"
                 "\n"
                 "Prints a saga: its state and error, each step with its state, attempts,\n"
                 "duration and last error, and the timeline of its events in order, with\n"
                 "times relative to the start. Colour only on a terminal (NO_COLOR=1: none).\n"
                 "\n"
                 "  --json  the saga as one JSON document (docs/operations.md)\n"
                 "\n"
                 "exit status: 0 shown, 1 error (no such saga: see sagactl list), 2 usage\n");
}

static void watch_usage(FILE *out)
{
    fprintf(out, "usage: sagactl watch ID\n"
                 "\n"
                 "Prints the saga's events as they are logged, from the first, until it is\n"
                 "COMPLETED, COMPENSATED, COMMITTED, ABORTED or STUCK; then its final state.\n"
                 "\n"
                 "exit status: 0 COMPLETED or COMMITTED, 1 error, 2 usage, 3 COMPENSATED or\n"
                 "ABORTED, 4 STUCK\n");
}

/* `text` cut to SHOW_MAX_TEXT bytes with an ellipsis, in `buf`. Control
 * characters (a newline in a reason) print as spaces. */
static const char *show_clip(const char *text, size_t len, char *buf, size_t size)
{
    size_t n = len < size - 4 ? len : size - 4;
    if (n > SHOW_MAX_TEXT)
        n = SHOW_MAX_TEXT;
    while (n < len && n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
        n--; /* do not split a UTF-8 character */
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)text[i] < 0x20 ? ' ' : text[i];
    if (n < len) {
        memcpy(buf + n, "...", 4);
    } else {
        buf[n] = '\0';
    }
    return buf;
}

static const char *show_attempts(const saga_step_info_t *st, char *buf)
{
    if (st->compensate_attempts > 0)
        snprintf(buf, FMT_LEN, "%u+%u", (unsigned)st->attempts, (unsigned)st->compensate_attempts);
    else
        snprintf(buf, FMT_LEN, "%u", (unsigned)st->attempts);
    return buf;
}

static const char *show_duration(const saga_step_info_t *st, uint64_t now, char *buf)
{
    char el[FMT_LEN];
    if (st->started_ms == 0)
        snprintf(buf, FMT_LEN, "-");
    else if (st->finished_ms >= st->started_ms)
        fmt_elapsed(st->finished_ms - st->started_ms, buf);
    else
        snprintf(buf, FMT_LEN, "%s so far",
                 fmt_elapsed(now > st->started_ms ? now - st->started_ms : 0, el));
    return buf;
}

static int show_header(const struct ctl *ctl, const saga_info_t *info, uint64_t now)
{
    struct table *t = table_new(2);
    char def[256], when[FMT_LEN * 2 + 8], took[FMT_LEN], iso[FMT_LEN], ago[FMT_LEN];
    char clip[SHOW_MAX_TEXT + 8];
    bool ended = saga_status_is_terminal(info->status);
    int rc = SAGA_ENOMEM;
    if (t == NULL)
        return rc;

    snprintf(def, sizeof(def), "%s v%u (%s)", info->definition, (unsigned)info->version,
             saga_mode_name(info->mode));
    snprintf(when, sizeof(when), "%s (%s)", fmt_utc(info->created_ms, iso),
             fmt_ago(now, info->created_ms, ago));
    uint64_t end = ended ? info->updated_ms : now;
    fmt_elapsed(end > info->created_ms ? end - info->created_ms : 0, took);

    if (table_add(t, (const char *[]){"saga", info->saga_id_text}, NULL) != 0 ||
        table_add(t, (const char *[]){"definition", def}, NULL) != 0 ||
        table_add(t, (const char *[]){"state", fmt_status_upper(info->status)},
                  (enum fmt_color[]){FMT_NONE, fmt_status_color(info->status)}) != 0)
        goto done;
    if (info->error[0] != '\0' &&
        table_add(t,
                  (const char *[]){"error",
                                   show_clip(info->error, strlen(info->error), clip, sizeof(clip))},
                  NULL) != 0)
        goto done;
    if (table_add(t, (const char *[]){"started", when}, NULL) != 0 ||
        table_add(t, (const char *[]){ended ? "took" : "running for", took}, NULL) != 0)
        goto done;
    if (info->deadline_ms != 0 && !ended &&
        table_add(t, (const char *[]){"deadline", fmt_utc(info->deadline_ms, iso)}, NULL) != 0)
        goto done;
    if (table_add(t,
                  (const char *[]){"input", info->input_len == 0
                                                ? "(none)"
                                                : show_clip((const char *)info->input,
                                                            info->input_len, clip, sizeof(clip))},
                  NULL) != 0)
        goto done;
    table_print(t, stdout, 0, ctl->color);
    rc = 0;
done:
    table_free(&t);
    return rc;
}

static int show_steps(const struct ctl *ctl, const saga_info_t *info, uint64_t now)
{
    struct table *t = table_new(7);
    bool compensated = false;
    int rc = SAGA_ENOMEM;
    if (t == NULL)
        return rc;
    static const enum fmt_color head[7] = {FMT_BOLD, FMT_BOLD, FMT_BOLD, FMT_BOLD,
                                           FMT_BOLD, FMT_BOLD, FMT_BOLD};
    if (table_add(
            t,
            (const char *[]){"STEP", "SERVICE", "ACTION", "STATE", "ATTEMPTS", "DURATION", "ERROR"},
            head) != 0)
        goto done;
    for (size_t i = 0; i < info->n_steps; i++) {
        const saga_step_info_t *st = &info->steps[i];
        char att[FMT_LEN], dur[FMT_LEN], clip[SHOW_MAX_TEXT + 8];
        compensated |= st->compensate_attempts > 0;
        const char *cells[7] = {st->name,
                                st->service,
                                st->action,
                                saga_step_status_name(st->status),
                                show_attempts(st, att),
                                show_duration(st, now, dur),
                                show_clip(st->error, strlen(st->error), clip, sizeof(clip))};
        enum fmt_color colors[7] = {FMT_NONE, FMT_NONE, FMT_NONE, fmt_step_color(st->status),
                                    FMT_NONE, FMT_NONE, FMT_NONE};
        if (table_add(t, cells, colors) != 0)
            goto done;
    }
    printf("\n");
    table_print(t, stdout, 0, ctl->color);
    if (compensated)
        printf("(attempts: forward+%s)\n",
               info->mode == SAGA_MODE_2PC ? "commit or abort" : "compensate");
    rc = 0;
done:
    table_free(&t);
    return rc;
}

static int show_timeline(const struct ctl *ctl, const saga_info_t *info)
{
    struct table *t = table_new(5);
    int rc = SAGA_ENOMEM;
    if (t == NULL)
        return rc;
    uint64_t start = info->created_ms;
    if (info->n_events > 0 && (start == 0 || info->events[0].at_ms < start))
        start = info->events[0].at_ms;
    for (size_t i = 0; i < info->n_events; i++) {
        const saga_event_t *ev = &info->events[i];
        char off[FMT_LEN], att[FMT_LEN] = "", clip[SHOW_MAX_TEXT + 8];
        if (ev->attempt > 0)
            snprintf(att, sizeof(att), "#%u", (unsigned)ev->attempt);
        const char *cells[5] = {fmt_offset(start, ev->at_ms, off), ev->kind, ev->step, att,
                                show_clip(ev->detail, strlen(ev->detail), clip, sizeof(clip))};
        enum fmt_color colors[5] = {FMT_DIM, FMT_NONE, FMT_NONE, FMT_DIM, FMT_NONE};
        if (strstr(ev->kind, "fail") != NULL || strstr(ev->kind, "stuck") != NULL)
            colors[1] = FMT_RED;
        if (table_add(t, cells, colors) != 0)
            goto done;
    }
    printf("\n%stimeline%s (from the start)\n", ctl->color ? fmt_color(FMT_BOLD) : "",
           ctl->color ? fmt_reset() : "");
    if (info->n_events > 0 && info->events[0].seq > 1)
        printf("  (%" PRIu64 " earlier events not shown)\n", info->events[0].seq - 1);
    table_print(t, stdout, 2, ctl->color);
    rc = 0;
done:
    table_free(&t);
    return rc;
}

/* Prints the whole saga for people. Returns 0 or SAGA_ENOMEM. */
static int show_print(const struct ctl *ctl, const saga_info_t *info)
{
    uint64_t now = ctl_now_ms();
    int rc = show_header(ctl, info, now);
    if (rc == 0)
        rc = show_steps(ctl, info, now);
    if (rc == 0)
        rc = show_timeline(ctl, info);
    fflush(stdout);
    return rc;
}

/* Parses ID [--json] for show and watch. Returns 0, -1 (help printed) or CTL_USAGE. */
static int show_parse(struct ctl *ctl, const char *cmd, int argc, char **argv, bool allow_json,
                      bool *json, uint8_t id[SAGA_ID_LEN])
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'}, CTL_OPT_COMMON, {NULL, 0, NULL, 0}};
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (ctl_common_opt(ctl, opt, optarg))
            continue;
        if (opt == 'j' && allow_json) {
            *json = true;
        } else if (opt == 'h') {
            if (allow_json)
                show_usage(stdout);
            else
                watch_usage(stdout);
            return -1;
        } else {
            if (opt == 'j')
                opt = '?';
            return ctl_bad_option(cmd, opt, argc, argv);
        }
    }
    if (ctl_one_id_arg(cmd, argc, argv) != 0)
        return CTL_USAGE;
    return ctl_parse_id(cmd, argv[optind], id);
}

int ctl_show(struct ctl *ctl, int argc, char **argv)
{
    uint8_t id[SAGA_ID_LEN];
    bool json = false;
    int rc = show_parse(ctl, "show", argc, argv, true, &json, id);
    if (rc != 0)
        return rc < 0 ? CTL_OK : rc;

    saga_client_t *client = ctl_client(ctl);
    saga_result_t *r = NULL;
    int status = CTL_ERROR;
    if (client == NULL)
        return CTL_ERROR;
    rc = saga_client_get_sync(client, id, &r);
    if (rc != 0) {
        ctl_fail(ctl, "show", argv[optind], rc, r);
        goto done;
    }
    if (json)
        rc = ctl_json_print(ctl_json_saga(saga_result_info(r)), stdout);
    else
        rc = show_print(ctl, saga_result_info(r));
    if (rc != 0) {
        fprintf(stderr, "sagactl show: cannot print: %s\n", saga_strerror(rc));
        goto done;
    }
    status = CTL_OK;
done:
    saga_result_free(&r);
    saga_client_free(&client);
    return status;
}

struct watch_state {
    const struct ctl *ctl;
    uint64_t start_ms; /* the first event's time: offsets count from it */
    bool started;
};

static void watch_event(saga_client_t *c, const saga_event_t *ev, void *data)
{
    struct watch_state *w = data;
    const struct ctl *ctl = w->ctl;
    char off[FMT_LEN], att[FMT_LEN] = "", clip[SHOW_MAX_TEXT + 8];
    (void)c;
    if (!w->started) {
        w->started = true;
        w->start_ms = ev->at_ms;
    }
    if (ev->attempt > 0)
        snprintf(att, sizeof(att), "#%u", (unsigned)ev->attempt);
    bool bad = strstr(ev->kind, "fail") != NULL || strstr(ev->kind, "stuck") != NULL;
    char line[SHOW_MAX_TEXT + 160];
    int n = snprintf(line, sizeof(line), "%-10s %s%-22s%s %-14s %-4s %s",
                     fmt_offset(w->start_ms, ev->at_ms, off),
                     bad && ctl->color ? fmt_color(FMT_RED) : "", ev->kind,
                     bad && ctl->color ? fmt_reset() : "", ev->step, att,
                     show_clip(ev->detail, strlen(ev->detail), clip, sizeof(clip)));
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    while (len > 0 && line[len - 1] == ' ')
        len--;
    printf("%.*s\n", (int)len, line);
    fflush(stdout);
}

int ctl_watch(struct ctl *ctl, int argc, char **argv)
{
    uint8_t id[SAGA_ID_LEN];
    bool json = false;
    int rc = show_parse(ctl, "watch", argc, argv, false, &json, id);
    if (rc != 0)
        return rc < 0 ? CTL_OK : rc;

    struct watch_state w = {.ctl = ctl};
    saga_client_t *client = ctl_client(ctl);
    saga_result_t *r = NULL;
    int status = CTL_ERROR;
    if (client == NULL)
        return CTL_ERROR;
    rc = saga_client_watch_sync(client, id, watch_event, &w, &r);
    if (rc != 0) {
        ctl_fail(ctl, "watch", argv[optind], rc, r);
        goto done;
    }
    const saga_info_t *info = saga_result_info(r);
    char took[FMT_LEN];
    uint64_t end = info->updated_ms;
    fmt_elapsed(end > info->created_ms ? end - info->created_ms : 0, took);
    printf("%s%s%s in %s", ctl->color ? fmt_color(fmt_status_color(info->status)) : "",
           fmt_status_upper(info->status), ctl->color ? fmt_reset() : "", took);
    if (info->error[0] != '\0')
        printf(": %s", info->error);
    printf("\n");
    status = ctl_exit_for(info->status);
done:
    saga_result_free(&r);
    saga_client_free(&client);
    return status;
}
