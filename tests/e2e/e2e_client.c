/* Client-side helpers of the end-to-end tests (see e2e_client.h). Only the
 * public SDK API; no knowledge of the coordinator's insides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "e2e_client.h"
#include "harness.h"

static void client_free(void *arg)
{
    saga_client_t *c = arg;
    saga_client_free(&c);
}

saga_client_t *e2e_client(struct e2e *h, const char *coordinators)
{
    saga_client_t *c = saga_client_new(&(saga_client_options_t){
        .coordinator = coordinators, .label = "e2e", .request_timeout_ms = 5000});
    assert_non_null(c);
    e2e_on_teardown(h, client_free, c);
    return c;
}

void e2e_define(saga_client_t *c, const char *json)
{
    saga_result_t *r = NULL;
    int rc = saga_client_define_sync(c, json, &r);
    if (rc != 0)
        fail_msg("define: %s: %s", saga_err_name(rc), saga_result_error(r));
    saga_result_free(&r);
}

int e2e_start(saga_client_t *c, const char *definition, const char *input, const char *key,
              uint8_t id[SAGA_ID_LEN], char text[SAGA_ID_TEXT_LEN])
{
    saga_result_t *r = NULL;
    int rc = saga_client_start_sync(c,
                                    &(saga_start_request_t){.definition = definition,
                                                            .input = input,
                                                            .input_len = input ? strlen(input) : 0,
                                                            .idempotency_key = key},
                                    &r);
    if (rc != 0)
        fail_msg("start %s: %s: %s", definition, saga_err_name(rc), saga_result_error(r));
    memcpy(id, saga_result_saga_id(r), SAGA_ID_LEN);
    if (text != NULL)
        saga_id_format(id, text);
    int existed = saga_result_existed(r);
    saga_result_free(&r);
    return existed;
}

static int settled(saga_status_t s)
{
    return saga_status_is_terminal(s) || s == SAGA_STATUS_STUCK;
}

saga_result_t *e2e_wait(saga_client_t *c, const uint8_t id[SAGA_ID_LEN], unsigned timeout_ms)
{
    uint64_t until = e2e_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = e2e_now_ms();
        unsigned left = now < until ? (unsigned)(until - now) : 1;
        saga_result_t *r = NULL;
        int rc = saga_client_wait_sync(c, id, left > 2000 ? 2000 : left, &r);
        if (rc == 0 && settled(saga_result_info(r)->status)) {
            /* A Wait answers without the timeline: read the whole saga, and
             * check it says what the Wait said. */
            assert_int_equal(saga_result_info(r)->n_events, 0);
            saga_status_t status = saga_result_info(r)->status;
            saga_result_t *full = NULL;
            rc = saga_client_get_sync(c, id, &full);
            if (rc != 0)
                fail_msg("get after wait: %s %s", saga_err_name(rc), saga_result_error(full));
            assert_int_equal(saga_result_info(full)->status, status);
            assert_int_equal(saga_result_info(full)->n_steps, saga_result_info(r)->n_steps);
            for (size_t i = 0; i < saga_result_info(r)->n_steps; i++) {
                const saga_step_info_t *a = &saga_result_info(r)->steps[i];
                const saga_step_info_t *b = &saga_result_info(full)->steps[i];
                assert_int_equal(a->status, b->status);
                assert_int_equal(a->attempts, b->attempts);
                assert_int_equal(a->compensate_attempts, b->compensate_attempts);
                assert_int_equal(a->output_len, b->output_len);
            }
            saga_result_free(&r);
            return full;
        }
        if (e2e_now_ms() >= until) {
            char text[SAGA_ID_TEXT_LEN];
            if (rc == 0)
                e2e_dump(saga_result_info(r));
            fail_msg("saga %s did not settle within %u ms (last answer: %s %s)",
                     saga_id_format(id, text), timeout_ms, saga_err_name(rc),
                     rc == 0 ? saga_status_name(saga_result_info(r)->status)
                             : saga_result_error(r));
        }
        saga_result_free(&r);
        if (rc != 0)
            e2e_sleep_ms(100); /* e.g. the coordinator is restarting */
    }
}

saga_result_t *e2e_expect(saga_client_t *c, const uint8_t id[SAGA_ID_LEN], saga_status_t want,
                          unsigned timeout_ms)
{
    saga_result_t *r = e2e_wait(c, id, timeout_ms);
    const saga_info_t *info = saga_result_info(r);
    if (info->status != want) {
        e2e_dump(info);
        fail_msg("saga %s is %s (%s), want %s", info->saga_id_text, saga_status_name(info->status),
                 info->error, saga_status_name(want));
    }
    return r;
}

const saga_step_info_t *e2e_step(const saga_info_t *info, const char *name)
{
    for (size_t i = 0; i < info->n_steps; i++) {
        if (strcmp(info->steps[i].name, name) == 0)
            return &info->steps[i];
    }
    fail_msg("saga %s has no step %s", info->saga_id_text, name);
    return NULL;
}

long e2e_event(const saga_info_t *info, const char *kind, const char *step, size_t from)
{
    for (size_t i = from; i < info->n_events; i++) {
        if (strcmp(info->events[i].kind, kind) == 0 &&
            (step == NULL || strcmp(info->events[i].step, step) == 0))
            return (long)i;
    }
    return -1;
}

void e2e_dump(const saga_info_t *info)
{
    fprintf(stderr, "saga %s %s v%u: %s%s%s\n", info->saga_id_text, info->definition, info->version,
            saga_status_name(info->status), info->error[0] ? " - " : "", info->error);
    for (size_t i = 0; i < info->n_steps; i++) {
        const saga_step_info_t *s = &info->steps[i];
        fprintf(stderr, "  step %-10s %-12s attempts=%u compensate_attempts=%u %s\n", s->name,
                saga_step_status_name(s->status), s->attempts, s->compensate_attempts, s->error);
    }
    for (size_t i = 0; i < info->n_events; i++) {
        const saga_event_t *e = &info->events[i];
        fprintf(stderr, "  %3llu %-20s %-10s #%u %s\n", (unsigned long long)e->seq, e->kind,
                e->step, e->attempt, e->detail);
    }
}
