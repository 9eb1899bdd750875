/* End to end, requests refused for their content get their own error while a
 * saga started alongside completes; see README.md. Only through the SDK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e_client.h"
#include "harness.h"

#define SETTLE_MS   20000
#define MAX_PAYLOAD 1024

static const char along_def[] = "{\"name\": \"along\", \"version\": 1, \"steps\": ["
                                "{\"name\": \"slow\", \"service\": \"svc\", \"action\": \"slow\"},"
                                "{\"name\": \"ok\", \"service\": \"svc\", \"action\": \"ok\"}]}";

struct world {
    struct e2e *h;
    struct e2e_proc *sagad;
    saga_client_t *c;
    uint8_t along[16];
};

static struct world world_begin(void **state, const char *name)
{
    struct world w = {0};
    w.h = e2e_begin(state, name, 0);
    w.sagad = e2e_sagad(w.h, &(struct e2e_sagad_opts){.extra = {"--max-payload", "1024"}});
    e2e_peer(w.h, &(struct e2e_peer_opts){.coordinators = w.sagad->addr,
                                          .service = "svc",
                                          .on = {"slow=delay:2000", "ok=ok", "a=ok", "b=fail",
                                                 "stuck=ok", "stuck.compensate=fail", "hold=hang",
                                                 "hold.compensate=ok"}});
    w.c = e2e_client(w.h, w.sagad->addr);
    e2e_define(w.c, along_def);
    e2e_start(w.c, "along", "{}", NULL, w.along, NULL);
    return w;
}

static void world_end(struct world *w)
{
    saga_result_t *r = e2e_expect(w->c, w->along, SAGA_STATUS_COMPLETED, SETTLE_MS);
    saga_result_free(&r);
    e2e_finish(w->h);
}

/* The request failed with `code` and a message holding `text`. */
static void expect_error(int rc, saga_result_t **r, int code, const char *text, const char *what)
{
    if (rc != code)
        fail_msg("%s: got %s (%s), want %s", what, saga_err_name(rc), saga_result_error(*r),
                 saga_err_name(code));
    assert_int_equal(saga_result_status(*r), code);
    if (text != NULL && strstr(saga_result_error(*r), text) == NULL)
        fail_msg("%s: message \"%s\" does not say \"%s\"", what, saga_result_error(*r), text);
    saga_result_free(r);
}

/* "LINE:COL: " somewhere in the text. */
static int has_position(const char *text, int line)
{
    for (const char *p = text; *p; p++) {
        if (!isdigit((unsigned char)*p) || (p > text && isdigit((unsigned char)p[-1])))
            continue;
        char *end;
        long l = strtol(p, &end, 10);
        if (*end != ':' || !isdigit((unsigned char)end[1]))
            continue;
        strtol(end + 1, &end, 10);
        if (end[0] == ':' && end[1] == ' ' && (line == 0 || l == line))
            return 1;
    }
    return 0;
}

static void test_definitions(void **state)
{
    struct world w = world_begin(state, "defs");
    saga_result_t *r = NULL;

    /* Unknown definitions, by name and by version. */
    int rc = saga_client_start_sync(w.c, &(saga_start_request_t){.definition = "nope"}, &r);
    expect_error(rc, &r, SAGA_ENOTFOUND, "nope", "start of an unknown definition");
    rc = saga_client_start_sync(w.c, &(saga_start_request_t){.definition = "along", .version = 9},
                                &r);
    expect_error(rc, &r, SAGA_ENOTFOUND, "version 9", "start of an unknown version");

    /* Invalid documents: the message names line and column. */
    const char *misspelt = "{\n"
                           "  \"name\": \"bad\", \"version\": 1,\n"
                           "  \"steps\": [{\"name\": \"a\", \"service\": \"s\", \"action\": "
                           "\"a\", \"timout\": \"1s\"}]\n"
                           "}\n";
    rc = saga_client_define_sync(w.c, misspelt, &r);
    if (rc != SAGA_EDEFINITION || !has_position(saga_result_error(r), 3))
        fail_msg("define (misspelt key): %s \"%s\"", saga_err_name(rc), saga_result_error(r));
    assert_non_null(strstr(saga_result_error(r), "timout"));
    saga_result_free(&r);
    rc = saga_client_define_sync(w.c, "{\"name\": \"broken\",\n \"version\": }", &r);
    if (rc != SAGA_EDEFINITION || !has_position(saga_result_error(r), 2))
        fail_msg("define (bad JSON): %s \"%s\"", saga_err_name(rc), saga_result_error(r));
    saga_result_free(&r);
    rc = saga_client_define_sync(w.c,
                                 "{\"name\": \"cyc\", \"version\": 1, \"steps\": [\n"
                                 "{\"name\": \"a\", \"service\": \"s\", \"action\": \"a\", "
                                 "\"after\": [\"b\"]},\n"
                                 "{\"name\": \"b\", \"service\": \"s\", \"action\": \"b\"}]}",
                                 &r);
    if (rc != SAGA_EDEFINITION || !has_position(saga_result_error(r), 0) ||
        strstr(saga_result_error(r), "cycle") == NULL)
        fail_msg("define (cycle): %s \"%s\"", saga_err_name(rc), saga_result_error(r));
    saga_result_free(&r);
    /* Inline, the same. */
    rc = saga_client_start_sync(w.c, &(saga_start_request_t){.definition_json = misspelt}, &r);
    if (rc != SAGA_EDEFINITION || !has_position(saga_result_error(r), 3))
        fail_msg("inline start: %s \"%s\"", saga_err_name(rc), saga_result_error(r));
    saga_result_free(&r);

    /* The same body again is fine (not created); another body under the same version is not. */
    assert_int_equal(saga_client_define_sync(w.c, along_def, &r), 0);
    assert_int_equal(saga_result_def_created(r), 0);
    assert_int_equal(saga_result_def_version(r), 1);
    saga_result_free(&r);
    const char *changed = "{\"name\": \"along\", \"version\": 1, \"steps\": ["
                          "{\"name\": \"ok\", \"service\": \"svc\", \"action\": \"ok\"}]}";
    rc = saga_client_define_sync(w.c, changed, &r);
    expect_error(rc, &r, SAGA_EEXIST, "along", "define of a changed body");
    rc = saga_client_start_sync(w.c, &(saga_start_request_t){.definition_json = changed}, &r);
    expect_error(rc, &r, SAGA_EEXIST, "along", "inline start of a changed body");
    /* Under a new version it is welcome, and an inline definition starts. */
    const char *v2 = "{\"name\": \"along\", \"version\": 2, \"steps\": ["
                     "{\"name\": \"ok\", \"service\": \"svc\", \"action\": \"ok\"}]}";
    assert_int_equal(
        saga_client_start_sync(w.c, &(saga_start_request_t){.definition_json = v2}, &r), 0);
    uint8_t id[16];
    memcpy(id, saga_result_saga_id(r), 16);
    saga_result_free(&r);
    r = e2e_expect(w.c, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    assert_int_equal(saga_result_info(r)->version, 2);
    saga_result_free(&r);
    /* By name alone, the latest version; by name and version, that one. */
    e2e_start(w.c, "along", "{}", NULL, id, NULL);
    assert_int_equal(saga_client_get_sync(w.c, id, &r), 0);
    assert_int_equal(saga_result_info(r)->version, 2);
    saga_result_free(&r);
    world_end(&w);
}

static void test_unknown_ids_and_limits(void **state)
{
    struct world w = world_begin(state, "ids");
    saga_result_t *r = NULL;
    uint8_t nobody[16];
    assert_int_equal(saga_id_parse("00000000-0000-4000-8000-000000000001", nobody), 0);

    expect_error(saga_client_get_sync(w.c, nobody, &r), &r, SAGA_ENOTFOUND,
                 "00000000-0000-4000-8000-000000000001", "get");
    expect_error(saga_client_wait_sync(w.c, nobody, 1000, &r), &r, SAGA_ENOTFOUND, NULL, "wait");
    expect_error(saga_client_retry_sync(w.c, nobody, "why", &r), &r, SAGA_ENOTFOUND, NULL, "retry");
    expect_error(saga_client_abort_sync(w.c, nobody, "why", &r), &r, SAGA_ENOTFOUND, NULL, "abort");
    expect_error(saga_client_resolve_sync(w.c, nobody, SAGA_STATUS_COMPLETED, "why", &r), &r,
                 SAGA_ENOTFOUND, NULL, "resolve");
    expect_error(saga_client_watch_sync(w.c, nobody, NULL, NULL, &r), &r, SAGA_ENOTFOUND, NULL,
                 "watch");
    expect_error(saga_client_list_sync(w.c, &(saga_list_filter_t){.cursor = "not-a-cursor"}, &r),
                 &r, SAGA_EINVAL, "cursor", "list with a bad cursor");

    /* Input over --max-payload: refused; at the limit: fine. */
    char input[MAX_PAYLOAD + 1];
    memset(input, ' ', sizeof(input));
    input[0] = '"';
    input[MAX_PAYLOAD - 1] = '"';
    int rc = saga_client_start_sync(
        w.c,
        &(saga_start_request_t){.definition = "along", .input = input, .input_len = sizeof(input)},
        &r);
    expect_error(rc, &r, SAGA_ETOOBIG, "1025", "start with 1025 bytes of input");
    rc = saga_client_start_sync(
        w.c,
        &(saga_start_request_t){.definition = "along", .input = input, .input_len = MAX_PAYLOAD},
        &r);
    assert_int_equal(rc, 0);
    uint8_t id[16];
    memcpy(id, saga_result_saga_id(r), 16);
    saga_result_free(&r);
    r = e2e_expect(w.c, id, SAGA_STATUS_COMPLETED, SETTLE_MS);
    assert_int_equal(saga_result_info(r)->input_len, MAX_PAYLOAD);
    /* testpeer echoes its input: the output at the limit is taken as it is */
    assert_int_equal(e2e_step(saga_result_info(r), "ok")->output_len, MAX_PAYLOAD);
    saga_result_free(&r);
    world_end(&w);
}

static void test_operator_states(void **state)
{
    struct world w = world_begin(state, "operator");
    saga_result_t *r = NULL;
    e2e_define(w.c, "{\"name\": \"fails\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"a\", \"service\": \"svc\", \"action\": \"a\"},"
                    "{\"name\": \"b\", \"service\": \"svc\", \"action\": \"b\"}]}");
    e2e_define(w.c, "{\"name\": \"sticks\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"s\", \"service\": \"svc\", \"action\": \"stuck\", "
                    "\"compensate_retry\": {\"max_attempts\": 2, \"backoff\": \"10ms\"}},"
                    "{\"name\": \"b\", \"service\": \"svc\", \"action\": \"b\"}]}");
    e2e_define(w.c, "{\"name\": \"holds\", \"version\": 1, \"steps\": ["
                    "{\"name\": \"a\", \"service\": \"svc\", \"action\": \"a\"},"
                    "{\"name\": \"h\", \"service\": \"svc\", \"action\": \"hold\", "
                    "\"timeout\": \"1s\"}]}");

    /* The saga running alongside: no retry, no resolve while it runs. */
    expect_error(saga_client_retry_sync(w.c, w.along, "now", &r), &r, SAGA_ESTATE, "running",
                 "retry of a running saga");
    expect_error(saga_client_resolve_sync(w.c, w.along, SAGA_STATUS_COMPLETED, "now", &r), &r,
                 SAGA_ESTATE, "running", "resolve of a running saga");

    /* Finished: nothing to do. */
    uint8_t done[16];
    e2e_start(w.c, "fails", "{}", NULL, done, NULL);
    r = e2e_expect(w.c, done, SAGA_STATUS_COMPENSATED, SETTLE_MS);
    saga_result_free(&r);
    expect_error(saga_client_abort_sync(w.c, done, "late", &r), &r, SAGA_ESTATE, "compensated",
                 "abort of a finished saga");
    expect_error(saga_client_retry_sync(w.c, done, "late", &r), &r, SAGA_ESTATE, NULL,
                 "retry of a finished saga");

    /* STUCK: a compensation that fails. Retry fails the same way; a resolve
     * must fit the mode; then it resolves; then it is finished. */
    uint8_t stuck[16];
    e2e_start(w.c, "sticks", "{}", NULL, stuck, NULL);
    r = e2e_expect(w.c, stuck, SAGA_STATUS_STUCK, SETTLE_MS);
    assert_non_null(strstr(saga_result_info(r)->error, "compensate"));
    saga_result_free(&r);
    expect_error(saga_client_abort_sync(w.c, stuck, "no", &r), &r, SAGA_ESTATE, "stuck",
                 "abort of a stuck saga");
    assert_int_equal(saga_client_retry_sync(w.c, stuck, "once more", &r), 0);
    saga_result_free(&r);
    r = e2e_expect(w.c, stuck, SAGA_STATUS_STUCK, SETTLE_MS);
    assert_true(e2e_event(saga_result_info(r), "saga.retried", NULL, 0) > 0);
    saga_result_free(&r);
    int rc = saga_client_resolve_sync(w.c, stuck, SAGA_STATUS_COMMITTED, "wrong mode", &r);
    if (rc != SAGA_EINVAL && rc != SAGA_ESTATE)
        fail_msg("resolve as committed of a saga: %s (%s)", saga_err_name(rc),
                 saga_result_error(r));
    saga_result_free(&r);
    assert_int_equal(
        saga_client_resolve_sync(w.c, stuck, SAGA_STATUS_COMPENSATED, "released by hand", &r), 0);
    assert_int_equal(saga_result_info(r)->status, SAGA_STATUS_COMPENSATED);
    saga_result_free(&r);
    expect_error(saga_client_resolve_sync(w.c, stuck, SAGA_STATUS_COMPENSATED, "again", &r), &r,
                 SAGA_ESTATE, NULL, "resolve of a resolved saga");

    /* Abort while a step hangs before the pivot: it compensates. */
    uint8_t held[16];
    char held_t[37];
    e2e_start(w.c, "holds", "{}", NULL, held, held_t);
    e2e_rec_wait(w.h, held_t, "h", "action", 1, 10000);
    assert_int_equal(saga_client_abort_sync(w.c, held, "changed my mind", &r), 0);
    saga_result_free(&r);
    r = e2e_expect(w.c, held, SAGA_STATUS_COMPENSATED, SETTLE_MS);
    assert_non_null(strstr(saga_result_info(r)->error, "abort"));
    saga_result_free(&r);
    world_end(&w);
}

static void test_auth(void **state)
{
    struct e2e *h = e2e_begin(state, "auth", 0);
    struct e2e_proc *sd =
        e2e_sagad(h, &(struct e2e_sagad_opts){.extra = {"--auth-token", "s3cret"}});
    e2e_peer(h, &(struct e2e_peer_opts){.coordinators = sd->addr,
                                        .service = "svc",
                                        .on = {"ok=ok"},
                                        .extra = {"--token", "s3cret"}});
    /* A participant with the wrong token is refused (and keeps trying). */
    struct e2e_proc *bad = e2e_peer(h, &(struct e2e_peer_opts){.coordinators = sd->addr,
                                                               .service = "svc",
                                                               .on = {"ok=ok"},
                                                               .extra = {"--token", "guess"},
                                                               .no_wait = 1});
    e2e_log_wait(bad, "event=coordinator.error", "SAGA_EAUTH", 1, 5000);
    e2e_log_wait(sd, "event=session.refused", "SAGA_EAUTH", 1, 5000);

    saga_result_t *r = NULL;
    saga_client_t *anon = e2e_client(h, sd->addr);
    expect_error(saga_client_define_sync(anon, along_def, &r), &r, SAGA_EAUTH, NULL,
                 "define without a token");
    saga_client_t *wrong = saga_client_new(&(saga_client_options_t){
        .coordinator = sd->addr, .auth_token = "guess", .request_timeout_ms = 5000});
    assert_non_null(wrong);
    int rc = saga_client_list_sync(wrong, &(saga_list_filter_t){0}, &r);
    saga_client_free(&wrong);
    expect_error(rc, &r, SAGA_EAUTH, NULL, "list with a wrong token");

    saga_client_t *c = saga_client_new(&(saga_client_options_t){
        .coordinator = sd->addr, .auth_token = "s3cret", .request_timeout_ms = 5000});
    assert_non_null(c);
    e2e_define(c, "{\"name\": \"one\", \"version\": 1, \"steps\": ["
                  "{\"name\": \"ok\", \"service\": \"svc\", \"action\": \"ok\"}]}");
    uint8_t id[16];
    e2e_start(c, "one", "{}", NULL, id, NULL);
    r = e2e_wait(c, id, SETTLE_MS);
    int status = saga_result_info(r)->status;
    saga_result_free(&r);
    saga_client_free(&c);
    assert_int_equal(status, SAGA_STATUS_COMPLETED);
    e2e_finish(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_definitions, e2e_teardown),
        cmocka_unit_test_teardown(test_unknown_ids_and_limits, e2e_teardown),
        cmocka_unit_test_teardown(test_operator_states, e2e_teardown),
        cmocka_unit_test_teardown(test_auth, e2e_teardown),
    };
    e2e_server_url();
    return cmocka_run_group_tests_name("e2e_errors", tests, NULL, NULL);
}
