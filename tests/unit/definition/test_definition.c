/* Definitions: every default, every validation error with its place, the
 * derived graph fields, and the canonical form and hash. Documents are written
 * with ' for " and converted before parsing, so they read easily here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/definition.h"
#include "saga/error.h"

/* A copy of `doc` with every ' turned into ". */
static char *json_of(const char *doc)
{
    char *text = strdup(doc);
    assert_non_null(text);
    for (char *c = text; *c != '\0'; c++) {
        if (*c == '\'')
            *c = '"';
    }
    return text;
}

static struct definition *parse_ok(const char *doc)
{
    char *text = json_of(doc);
    struct def_diags diags = {0};
    struct definition *def = NULL;
    int err = definition_parse(text, strlen(text), &def, &diags);
    if (err != 0)
        def_diags_print(&diags, "t", stderr);
    assert_int_equal(err, 0);
    assert_int_equal(diags.n, 0);
    assert_non_null(def);
    def_diags_clear(&diags);
    free(text);
    return def;
}

/* The errors of an invalid document, as def_diags_print() writes them for
 * file "t". The caller frees the result. */
static char *errors_of_text(const char *text, size_t len)
{
    struct def_diags diags = {0};
    struct definition *def = (struct definition *)&diags; /* must be reset to NULL */
    char *out = NULL;
    size_t out_len = 0;
    assert_int_equal(definition_parse(text, len, &def, &diags), SAGA_EDEFINITION);
    assert_null(def);
    assert_true(diags.n > 0);
    FILE *f = open_memstream(&out, &out_len);
    assert_non_null(f);
    def_diags_print(&diags, "t", f);
    fclose(f);
    def_diags_clear(&diags);
    assert_int_equal(diags.n, 0);
    assert_null(diags.items);
    return out;
}

static char *errors_of(const char *doc)
{
    char *text = json_of(doc);
    char *out = errors_of_text(text, strlen(text));
    free(text);
    return out;
}

struct error_case {
    const char *name;
    const char *doc;
    const char *expected;
};

static void run_cases(const struct error_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *got = errors_of(cases[i].doc);
        if (strcmp(got, cases[i].expected) != 0)
            print_error("case %s:\nexpected:\n%sgot:\n%s", cases[i].name, cases[i].expected, got);
        assert_string_equal(got, cases[i].expected);
        free(got);
    }
}

#define RUN_CASES(cases) run_cases(cases, sizeof(cases) / sizeof(cases[0]))

/* --- errors -------------------------------------------------------------- */

static const struct error_case document_cases[] = {
    {"not_object", "[1]", "t:1:1: a definition must be a JSON object, got array\n"},
    {"string_doc", "'steps'", "t:1:1: a definition must be a JSON object, got string\n"},
    {"syntax", "{'name': }", "t:1:10: invalid JSON: unexpected token near '}'\n"},
    {"empty", "", "t:1:1: invalid JSON: unexpected token near end of file\n"},
    {"dup_key", "{'name':'t',\n 'name':'u'}",
     "t:1:1: missing required key \"version\"\nt:1:1: missing required key \"steps\"\nt:2:2: "
     "duplicate key \"name\" (first at line 1, column 2)\n"},
    {"trailing", "{} x", "t:1:4: invalid JSON: end of file expected near 'x'\n"},
    {"missing_all", "{}",
     "t:1:1: missing required key \"name\"\nt:1:1: missing required key \"version\"\nt:1:1: "
     "missing required key \"steps\"\n"},
};

static const struct error_case version_cases[] = {
    {"version_string",
     "{'name':'t','version':'3','steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:23: \"version\" must be a positive integer, got string\n"},
    {"version_real", "{'name':'t','version':3.0,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:23: \"version\" must be a positive integer, got real number\n"},
    {"version_bool",
     "{'name':'t','version':true,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:23: \"version\" must be a positive integer, got boolean\n"},
    {"version_null",
     "{'name':'t','version':null,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:23: \"version\" must be a positive integer, got null\n"},
    {"version_zero", "{'name':'t','version':0,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:23: \"version\" must be a positive integer of at most 2147483647, got 0\n"},
    {"version_negative",
     "{'name':'t','version':-2,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:23: \"version\" must be a positive integer of at most 2147483647, got -2\n"},
    {"version_too_big",
     "{'name':'t','version':2147483648,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:23: \"version\" must be a positive integer of at most 2147483647, got 2147483648\n"},
};

static const struct error_case name_cases[] = {
    {"name_empty", "{'name':'','version':1,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:9: \"name\" must not be empty\n"},
    {"name_space",
     "{'name':'check out','version':1,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:9: \"name\" may hold only ASCII letters, digits, '_', '.' and '-', got \"check out\"\n"},
    {"name_long",
     "{'name':'"
     "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
     "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn','version':1,'steps':[{'name':'a','service':'s','action'"
     ":'a'}]}",
     "t:1:9: \"name\" is 129 bytes long; at most 128 are allowed\n"},
    {"name_int", "{'name':5,'version':1,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:9: \"name\" must be a string, got integer\n"},
    {"name_utf8",
     "{'name':'caf\xc3\xa9"
     "','version':1,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:9: \"name\" may hold only ASCII letters, digits, '_', '.' and '-', got \"caf\xc3\xa9"
     "\"\n"},
    {"name_quote",
     "{'name':'a\\\"b\\n','version':1,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:9: \"name\" may hold only ASCII letters, digits, '_', '.' and '-', got "
     "\"a\\\"b\\u000a\"\n"},
};

static const struct error_case mode_timeout_cases[] = {
    {"mode_unknown",
     "{'name':'t','version':1,'mode':'xyz','steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:32: \"mode\" must be \"saga\" or \"2pc\", got \"xyz\"\n"},
    {"mode_case",
     "{'name':'t','version':1,'mode':'2PC','steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:32: \"mode\" must be \"saga\" or \"2pc\", got \"2PC\"; did you mean \"2pc\"?\n"},
    {"mode_int",
     "{'name':'t','version':1,'mode':2,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:32: \"mode\" must be \"saga\" or \"2pc\", got integer\n"},
    {"saga_timeout_days",
     "{'name':'t','version':1,'timeout':'31d','steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:35: \"timeout\" must be a duration such as \"250ms\", \"2s\", \"1m\" or \"1h\", got "
     "\"31d\"\n"},
    {"saga_timeout_big",
     "{'name':'t','version':1,'timeout':'721h','steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:35: \"timeout\" must be at most 720h, got \"721h\"\n"},
    {"saga_timeout_huge",
     "{'name':'t','version':1,'timeout':'99999999999h','steps':[{'name':'a','service':'s','action':"
     "'a'}]}",
     "t:1:35: \"timeout\" must be at most 720h, got \"99999999999h\"\n"},
    {"saga_timeout_int",
     "{'name':'t','version':1,'timeout':30,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:35: \"timeout\" must be a duration string such as \"250ms\", \"2s\", \"1m\" or \"1h\", "
     "got integer\n"},
    {"saga_timeout_zero",
     "{'name':'t','version':1,'timeout':'0ms','steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:35: \"timeout\" must be positive, got \"0ms\"\n"},
};

static const struct error_case steps_cases[] = {
    {"steps_object", "{'name':'t','version':1,'steps':{}}",
     "t:1:33: \"steps\" must be an array of steps, got object\n"},
    {"steps_empty", "{'name':'t','version':1,'steps':[]}",
     "t:1:33: \"steps\" must hold at least one step\n"},
    {"step_not_object",
     "{'name':'t','version':1,'steps':[5,{'name':'a','service':'s','action':'a'}]}",
     "t:1:34: each step must be an object, got integer\n"},
};

static const struct error_case unknown_keys_cases[] = {
    {"unknown_top_suggest",
     "{'name':'t','version':1,'stpes':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:25: unknown key \"stpes\"; did you mean \"steps\"?\n"},
    {"unknown_top_list",
     "{'name':'t','version':1,'foo':1,'steps':[{'name':'a','service':'s','action':'a'}]}",
     "t:1:25: unknown key \"foo\" (expected one of: name, version, mode, timeout, steps)\n"},
    {"unknown_step_retires",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','retires':{}}]}",
     "t:1:73: unknown key \"retires\"; did you mean \"retry\"?\n"},
    {"unknown_step_servce",
     "{'name':'t','version':1,'steps':[{'name':'a','servce':'s','action':'a'}]}",
     "t:1:46: unknown key \"servce\"; did you mean \"service\"?\n"},
    {"unknown_retry_key",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','retry':{'max_"
     "attemps':2}}]}",
     "t:1:82: unknown key \"max_attemps\"; did you mean \"max_attempts\"?\n"},
};

static const struct error_case step_fields_cases[] = {
    {"step_missing_all", "{'name':'t','version':1,'steps':[{}]}",
     "t:1:34: missing required key \"name\"\nt:1:34: missing required key \"service\"\nt:1:34: "
     "missing required key \"action\"\n"},
    {"step_service_int", "{'name':'t','version':1,'steps':[{'name':'a','service':1,'action':'a'}]}",
     "t:1:56: \"service\" must be a string, got integer\n"},
    {"step_action_bad",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'do it'}]}",
     "t:1:69: \"action\" may hold only ASCII letters, digits, '_', '.' and '-', got \"do it\"\n"},
    {"step_dup_name",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a'},\n{'name':'a','"
     "service':'s','action':'a'}]}",
     "t:2:9: duplicate step name \"a\" (first used at line 1, column 42)\n"},
    {"step_timeout_big",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','timeout':'25h'}]}",
     "t:1:83: \"timeout\" must be at most 24h, got \"25h\"\n"},
    {"step_timeout_fraction",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','timeout':'1.5s'}]}",
     "t:1:83: \"timeout\" must be a duration such as \"250ms\", \"2s\", \"1m\" or \"1h\", got "
     "\"1.5s\"\n"},
    {"step_timeout_iso",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','timeout':'PT1S'}]}",
     "t:1:83: \"timeout\" must be a duration such as \"250ms\", \"2s\", \"1m\" or \"1h\", got "
     "\"PT1S\"\n"},
    {"step_timeout_empty",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','timeout':''}]}",
     "t:1:83: \"timeout\" must be a duration such as \"250ms\", \"2s\", \"1m\" or \"1h\", got "
     "\"\"\n"},
    {"step_timeout_bool",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','timeout':false}]}",
     "t:1:83: \"timeout\" must be a duration string such as \"250ms\", \"2s\", \"1m\" or \"1h\", "
     "got boolean\n"},
};

static const struct error_case kind_cases[] = {
    {"kind_typo",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','kind':'pivto'}]}",
     "t:1:80: \"kind\" must be \"compensatable\", \"pivot\" or \"retriable\", got \"pivto\"; did "
     "you mean \"pivot\"?\n"},
    {"kind_retryable",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','kind':'retryable'}]"
     "}",
     "t:1:80: \"kind\" must be \"compensatable\", \"pivot\" or \"retriable\", got \"retryable\"; "
     "did you mean \"retriable\"?\n"},
    {"kind_unknown",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','kind':'xyz'}]}",
     "t:1:80: \"kind\" must be \"compensatable\", \"pivot\" or \"retriable\", got \"xyz\"\n"},
    {"kind_int",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','kind':1}]}",
     "t:1:80: \"kind\" must be \"compensatable\", \"pivot\" or \"retriable\", got integer\n"},
    {"kind_in_2pc",
     "{'name':'t','version':1,'mode':'2pc','steps':[{'name':'a','service':'s','action':'a','kind':'"
     "compensatable'}]}",
     "t:1:93: \"kind\" is not allowed in 2pc mode: every step prepares, then commits or aborts\n"},
    {"order_two_pivots",
     "{'name':'t','version':1,'steps':[{'name':'p','service':'s','action':'a','kind':'pivot'},\n{'"
     "name':'q','service':'s','action':'a','kind':'pivot'}]}",
     "t:2:47: only one step may be the pivot, and step \"p\" already is\n"},
};

static const struct error_case retry_cases[] = {
    {"retry_array",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','retry':[]}]}",
     "t:1:81: \"retry\" must be an object with \"max_attempts\", \"backoff\" and \"max_backoff\", "
     "got array\n"},
    {"retry_attempts_string",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','retry':{'max_"
     "attempts':'3'}}]}",
     "t:1:97: \"max_attempts\" must be a whole number from 0 (unlimited) to 10000, got string\n"},
    {"retry_attempts_big",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','retry':{'max_"
     "attempts':10001}}]}",
     "t:1:97: \"max_attempts\" must be a whole number from 0 (unlimited) to 10000, got 10001\n"},
    {"retry_attempts_negative",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','retry':{'max_"
     "attempts':-1}}]}",
     "t:1:97: \"max_attempts\" must be a whole number from 0 (unlimited) to 10000, got -1\n"},
    {"retry_attempts_real",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','retry':{'max_"
     "attempts':2.5}}]}",
     "t:1:97: \"max_attempts\" must be a whole number from 0 (unlimited) to 10000, got real "
     "number\n"},
    {"retry_backoff_over_max",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','retry':{'backoff':'"
     "2s','max_backoff':'1s'}}]}",
     "t:1:92: \"backoff\" (2s) must not exceed \"max_backoff\" (1s)\n"},
    {"retry_backoff_over_default",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','retry':{'backoff':'"
     "20s'}}]}",
     "t:1:92: \"backoff\" (20s) must not exceed \"max_backoff\" (10s by default)\n"},
    {"retry_max_under_default",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','retry':{'max_"
     "backoff':'50ms'}}]}",
     "t:1:96: \"max_backoff\" (50ms) must not be less than \"backoff\" (100ms by default)\n"},
    {"retry_backoff_limit",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','retry':{'backoff':'"
     "2h','max_backoff':'0s'}}]}",
     "t:1:92: \"backoff\" must be at most 1h, got \"2h\"\nt:1:111: \"max_backoff\" must be "
     "positive, got \"0s\"\n"},
    {"retriable_attempts",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','kind':'retriable','"
     "retry':{'max_attempts':5}}]}",
     "t:1:116: \"max_attempts\" of a retriable step must be 0 (unlimited): it is retried until it "
     "succeeds\n"},
    {"compensate_retry_pivot",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','kind':'pivot','"
     "compensate_retry':{'max_attempts':5}}]}",
     "t:1:107: \"compensate_retry\" is not allowed on a pivot step: it is never compensated\n"},
    {"compensate_retry_retriable",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','kind':'retriable','"
     "compensate_retry':{}}]}",
     "t:1:111: \"compensate_retry\" is not allowed on a retriable step: it is never compensated\n"},
    {"compensate_retry_bad",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','compensate_retry':{'"
     "max_attempts':-5,'backoff':'1x'}}]}",
     "t:1:108: \"max_attempts\" must be a whole number from 0 (unlimited) to 10000, got "
     "-5\nt:1:121: \"backoff\" must be a duration such as \"250ms\", \"2s\", \"1m\" or \"1h\", got "
     "\"1x\"\n"},
};

static const struct error_case after_cases[] = {
    {"after_string",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a'},{'name':'b','"
     "service':'s','action':'a','after':'a'}]}",
     "t:1:121: \"after\" must be an array of step names, got string\n"},
    {"after_int",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a'},{'name':'b','"
     "service':'s','action':'a','after':[1]}]}",
     "t:1:122: \"after\" must list step names, got integer\n"},
    {"after_unknown",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a'},{'name':'b','"
     "service':'s','action':'a','after':['zzz']}]}",
     "t:1:122: unknown step \"zzz\" in \"after\"\n"},
    {"after_typo",
     "{'name':'t','version':1,'steps':[{'name':'reserve','service':'s','action':'a'},{'name':'"
     "charge','service':'s','action':'a','after':['reserv']}]}",
     "t:1:133: unknown step \"reserv\" in \"after\"; did you mean \"reserve\"?\n"},
    {"after_self",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a'},{'name':'b','"
     "service':'s','action':'a','after':['b']}]}",
     "t:1:122: step \"b\" cannot come after itself\n"},
    {"after_twice",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a'},{'name':'b','"
     "service':'s','action':'a','after':['a','a']}]}",
     "t:1:126: \"after\" lists \"a\" twice\n"},
};

static const struct error_case cycles_cases[] = {
    {"cycle_two",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','after':['b']},{'"
     "name':'b','service':'s','action':'a','after':['a']}]}",
     "t:1:136: \"after\" makes a cycle: \"b\" waits for \"a\", which waits for \"b\"\n"},
    {"cycle_implicit",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','after':['c']},\n{'"
     "name':'b','service':'s','action':'a'},\n{'name':'c','service':'s','action':'a'}]}",
     "t:2:1: \"after\" makes a cycle: \"b\" waits for \"a\", which waits for \"c\", which waits "
     "for \"b\" (\"b\" has no \"after\", so it waits for the step listed before it)\n"},
    {"cycle_two_separate",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a','after':['b']},{'"
     "name':'b','service':'s','action':'a','after':['a']},{'name':'c','service':'s','action':'a','"
     "after':['d']},{'name':'d','service':'s','action':'a','after':['c']}]}",
     "t:1:136: \"after\" makes a cycle: \"b\" waits for \"a\", which waits for \"b\"\nt:1:244: "
     "\"after\" makes a cycle: \"d\" waits for \"c\", which waits for \"d\"\n"},
};

static const struct error_case kind_order_cases[] = {
    {"order_comp_after_pivot",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a'},\n{'name':'p','"
     "service':'s','action':'a','kind':'pivot'},\n{'name':'b','service':'s','action':'a'}]}",
     "t:3:1: compensatable step \"b\" cannot run after pivot step \"p\": the order is "
     "compensatable steps, then the pivot, then retriable steps\n"},
    {"order_comp_after_retriable",
     "{'name':'t','version':1,'steps':[{'name':'r','service':'s','action':'a','kind':'retriable'},"
     "\n{'name':'b','service':'s','action':'a'}]}",
     "t:2:1: compensatable step \"b\" cannot run after retriable step \"r\": the order is "
     "compensatable steps, then the pivot, then retriable steps\n"},
    {"order_pivot_after_retriable",
     "{'name':'t','version':1,'steps':[{'name':'r','service':'s','action':'a','kind':'retriable'},"
     "\n{'name':'p','service':'s','action':'a','kind':'pivot'}]}",
     "t:2:47: pivot step \"p\" cannot run after retriable step \"r\": the order is compensatable "
     "steps, then the pivot, then retriable steps\n"},
    {"order_pivot_beside_comp",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a'},\n{'name':'b','"
     "service':'s','action':'a','after':[]},\n{'name':'p','service':'s','action':'a','kind':'pivot'"
     ",'after':['a']}]}",
     "t:3:47: pivot step \"p\" must wait for compensatable step \"b\" (list it in \"after\", "
     "directly or through other steps): the order is compensatable steps, then the pivot, then "
     "retriable steps\n"},
    {"order_retriable_beside_comp",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a'},\n{'name':'r','"
     "service':'s','action':'a','kind':'retriable','after':[]}]}",
     "t:2:47: retriable step \"r\" must wait for compensatable step \"a\" (list it in \"after\", "
     "directly or through other steps): the order is compensatable steps, then the pivot, then "
     "retriable steps\n"},
    {"order_retriable_beside_pivot",
     "{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'a'},\n{'name':'p','"
     "service':'s','action':'a','kind':'pivot'},\n{'name':'r','service':'s','action':'a','kind':'"
     "retriable','after':['a']}]}",
     "t:3:47: retriable step \"r\" must wait for pivot step \"p\" (list it in \"after\", directly "
     "or through other steps): the order is compensatable steps, then the pivot, then retriable "
     "steps\n"},
};

static const struct error_case all_at_once_cases[] = {
    {"many",
     "{'name':'','version':'1','mode':'x',\n'steps':[{'name':'a','service':'s','action':'a','"
     "timeout':'1d'},\n{'name':'a','action':'a','after':['q']}]}",
     "t:1:9: \"name\" must not be empty\nt:1:22: \"version\" must be a positive integer, got "
     "string\nt:1:33: \"mode\" must be \"saga\" or \"2pc\", got \"x\"\nt:2:59: \"timeout\" must be "
     "a duration such as \"250ms\", \"2s\", \"1m\" or \"1h\", got \"1d\"\nt:3:1: missing required "
     "key \"service\"\nt:3:9: duplicate step name \"a\" (first used at line 2, column 18)\nt:3:35: "
     "unknown step \"q\" in \"after\"\n"},
};

static void test_document_errors(void **state)
{
    (void)state;
    RUN_CASES(document_cases);
}

static void test_version_errors(void **state)
{
    (void)state;
    RUN_CASES(version_cases);
}

static void test_name_errors(void **state)
{
    (void)state;
    RUN_CASES(name_cases);
}

static void test_mode_timeout_errors(void **state)
{
    (void)state;
    RUN_CASES(mode_timeout_cases);
}

static void test_steps_errors(void **state)
{
    (void)state;
    RUN_CASES(steps_cases);
}

static void test_unknown_keys_errors(void **state)
{
    (void)state;
    RUN_CASES(unknown_keys_cases);
}

static void test_step_fields_errors(void **state)
{
    (void)state;
    RUN_CASES(step_fields_cases);
}

static void test_kind_errors(void **state)
{
    (void)state;
    RUN_CASES(kind_cases);
}

static void test_retry_errors(void **state)
{
    (void)state;
    RUN_CASES(retry_cases);
}

static void test_after_errors(void **state)
{
    (void)state;
    RUN_CASES(after_cases);
}

static void test_cycles_errors(void **state)
{
    (void)state;
    RUN_CASES(cycles_cases);
}

static void test_kind_order_errors(void **state)
{
    (void)state;
    RUN_CASES(kind_order_cases);
}

static void test_all_at_once_errors(void **state)
{
    (void)state;
    RUN_CASES(all_at_once_cases);
}

/* A document of `n` steps, each `step` with %u for its index, after `head`. */
static char *many_steps(const char *head, const char *step, unsigned n)
{
    size_t cap = strlen(head) + (size_t)n * (strlen(step) + 16) + 8, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    len += (size_t)snprintf(text + len, cap - len, "%s", head);
    for (unsigned i = 0; i < n; i++) {
        if (i > 0)
            text[len++] = ',';
        len += (size_t)snprintf(text + len, cap - len, step, i);
    }
    snprintf(text + len, cap - len, "]}");
    for (char *c = text; *c != '\0'; c++) {
        if (*c == '\'')
            *c = '"';
    }
    return text;
}

#define HEAD "{'name':'t','version':1,'steps':["

static void test_too_many_steps(void **state)
{
    (void)state;
    char *text = many_steps(HEAD, "{'name':'s%u','service':'s','action':'a'}", DEF_MAX_STEPS + 1);
    char *got = errors_of_text(text, strlen(text));
    assert_string_equal(got, "t:1:33: \"steps\" holds 257 steps; at most 256 are allowed\n");
    free(got);
    free(text);

    /* DEF_MAX_STEPS steps in a chain: valid, one stage each. */
    text = many_steps(HEAD, "{'name':'s%u','service':'s','action':'a'}", DEF_MAX_STEPS);
    struct def_diags diags = {0};
    struct definition *def = NULL;
    assert_int_equal(definition_parse(text, strlen(text), &def, &diags), 0);
    assert_int_equal(def->n_steps, DEF_MAX_STEPS);
    assert_int_equal(def->n_stages, DEF_MAX_STEPS);
    assert_int_equal(def->steps[DEF_MAX_STEPS - 1].stage, DEF_MAX_STEPS - 1);
    assert_int_equal(definition_step_index(def, "s255"), 255);
    definition_free(&def);
    free(text);
}

static void test_error_cap(void **state)
{
    (void)state;
    /* 256 empty steps: three missing keys each, far over the cap. */
    char *text = many_steps(HEAD, "{}", DEF_MAX_STEPS);
    struct def_diags diags = {0};
    struct definition *def = NULL;
    assert_int_equal(definition_parse(text, strlen(text), &def, &diags), SAGA_EDEFINITION);
    assert_int_equal(diags.n, 101);
    assert_int_equal(diags.items[0].line, 1);
    assert_int_equal(diags.items[0].column, 34);
    assert_string_equal(diags.items[0].message, "missing required key \"name\"");
    assert_int_equal(diags.items[100].line, 0);
    assert_string_equal(diags.items[100].message, "too many errors: only the first 100 are shown");
    def_diags_clear(&diags);
    free(text);
}

static void test_text_edge_cases(void **state)
{
    (void)state;
    char *got = errors_of_text(NULL, 0);
    assert_string_equal(got, "t:1:1: invalid JSON: unexpected token near end of file\n");
    free(got);

    /* Only `len` bytes are read: what follows is not part of the document. */
    char *text = json_of("{'name':'t','version':1,'steps':[{'name':'a','service':'s','action':'"
                         "a'}]}TRAILING GARBAGE");
    struct def_diags diags = {0};
    struct definition *def = NULL;
    assert_int_equal(definition_parse(text, strlen(text) - 16, &def, &diags), 0);
    definition_free(&def);
    assert_null(def);
    free(text);

    /* A NUL byte inside a string is refused by the JSON reader. */
    static const char nul[] = "{\"name\":\"a\\u0000b\",\"version\":1,\"steps\":[]}";
    got = errors_of_text(nul, sizeof(nul) - 1);
    assert_non_null(strstr(got, "t:1:"));
    assert_non_null(strstr(got, "invalid JSON"));
    free(got);

    /* Deep nesting is refused by the JSON reader, not by a crash. */
    enum { DEPTH = 5000 };
    char *deep = malloc(2 * DEPTH);
    assert_non_null(deep);
    memset(deep, '[', DEPTH);
    memset(deep + DEPTH, ']', DEPTH);
    got = errors_of_text(deep, 2 * DEPTH);
    assert_non_null(strstr(got, "invalid JSON"));
    free(got);
    free(deep);
}

static void test_utf8_columns(void **state)
{
    (void)state;
    /* Columns count characters: "€" is three bytes but one column. */
    char *got = errors_of("{'name':'t','x€':1,'version':1,'steps':[{'name':'a','service':'s',"
                          "'action':'a'}]}");
    assert_string_equal(got, "t:1:13: unknown key \"x\xe2\x82\xac\" (expected one of: name, "
                             "version, mode, timeout, steps)\n");
    free(got);
}

static void test_diags_print(void **state)
{
    (void)state;
    struct def_diags diags = {0};
    char buf[256] = {0};

    /* Two parses into one list: the errors of both, each parse's sorted. */
    char *a = json_of("{'name':'t','version':0,'steps':[]}");
    char *b = json_of("[]");
    struct definition *def = NULL;
    assert_int_equal(definition_parse(a, strlen(a), &def, &diags), SAGA_EDEFINITION);
    assert_int_equal(definition_parse(b, strlen(b), &def, &diags), SAGA_EDEFINITION);
    assert_int_equal(diags.n, 3);
    diags.items[2].line = 0; /* as an error with no place */
    FILE *f = fmemopen(buf, sizeof(buf), "w");
    assert_non_null(f);
    def_diags_print(&diags, "dir/x.json", f);
    fclose(f);
    assert_string_equal(buf, "dir/x.json:1:23: \"version\" must be a positive integer of at most "
                             "2147483647, got 0\n"
                             "dir/x.json:1:33: \"steps\" must hold at least one step\n"
                             "dir/x.json: a definition must be a JSON object, got array\n");
    memset(buf, 0, sizeof(buf));
    f = fmemopen(buf, sizeof(buf), "w");
    def_diags_print(&diags, NULL, f);
    fclose(f);
    assert_non_null(strstr(buf, "<input>:1:23: "));

    def_diags_clear(&diags);
    assert_int_equal(diags.n, 0);
    def_diags_clear(&diags); /* twice: no-op */
    assert_int_equal(definition_parse(b, strlen(b), &def, &diags), SAGA_EDEFINITION);
    assert_int_equal(diags.n, 1);
    def_diags_clear(&diags);
    free(a);
    free(b);
}

/* --- valid definitions --------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    struct definition *def = parse_ok(HEAD "{'name':'a','service':'s','action':'x'}]}");
    assert_string_equal(def->name, "t");
    assert_int_equal(def->version, 1);
    assert_int_equal(def->mode, DEF_MODE_SAGA);
    assert_int_equal(def->timeout_ms, 0);
    assert_int_equal(def->n_steps, 1);
    assert_int_equal(def->n_stages, 1);
    assert_int_equal(def->pivot, -1);
    const struct def_step *s = &def->steps[0];
    assert_string_equal(s->name, "a");
    assert_string_equal(s->service, "s");
    assert_string_equal(s->action, "x");
    assert_int_equal(s->kind, DEF_KIND_COMPENSATABLE);
    assert_int_equal(s->timeout_ms, 10000);
    assert_int_equal(s->retry.max_attempts, 3);
    assert_int_equal(s->retry.backoff_ms, 100);
    assert_int_equal(s->retry.max_backoff_ms, 10000);
    assert_int_equal(s->compensate_retry.max_attempts, 10);
    assert_int_equal(s->compensate_retry.backoff_ms, 100);
    assert_int_equal(s->compensate_retry.max_backoff_ms, 10000);
    assert_int_equal(s->n_after, 0);
    assert_null(s->after);
    assert_int_equal(s->n_dependents, 0);
    assert_int_equal(s->stage, 0);
    assert_int_equal(strlen(def->hash), 64);
    assert_int_equal(strlen(def->canonical), def->canonical_len);
    definition_free(&def);
    assert_null(def);
}

static void test_retriable_defaults(void **state)
{
    (void)state;
    struct definition *def = parse_ok(HEAD "{'name':'a','service':'s','action':'x','kind':"
                                           "'retriable'},{'name':'b','service':'s','action':'x',"
                                           "'kind':'retriable','retry':{'backoff':'1s'}}]}");
    assert_int_equal(def->steps[0].retry.max_attempts, 0); /* unlimited */
    assert_int_equal(def->steps[0].retry.backoff_ms, 100);
    assert_int_equal(def->steps[0].retry.max_backoff_ms, 10000);
    assert_int_equal(def->steps[1].retry.max_attempts, 0);
    assert_int_equal(def->steps[1].retry.backoff_ms, 1000);
    definition_free(&def);
}

static void test_every_key_given(void **state)
{
    (void)state;
    struct definition *def = parse_ok(
        "{'name':'Order_flow.v2-x','version':2147483647,'mode':'saga','timeout':'720h',"
        "'steps':[{'name':'a','service':'svc.one','action':'do-it','kind':'compensatable',"
        "'after':[],'timeout':'24h','retry':{'max_attempts':10000,'backoff':'1h','max_backoff':"
        "'1h'},'compensate_retry':{'max_attempts':0,'backoff':'1ms','max_backoff':'2m'}}]}");
    assert_string_equal(def->name, "Order_flow.v2-x");
    assert_int_equal(def->version, 2147483647);
    assert_int_equal(def->timeout_ms, 720u * 3600 * 1000);
    const struct def_step *s = &def->steps[0];
    assert_string_equal(s->service, "svc.one");
    assert_string_equal(s->action, "do-it");
    assert_int_equal(s->timeout_ms, 24u * 3600 * 1000);
    assert_int_equal(s->retry.max_attempts, 10000);
    assert_int_equal(s->retry.backoff_ms, 3600000);
    assert_int_equal(s->retry.max_backoff_ms, 3600000);
    assert_int_equal(s->compensate_retry.max_attempts, 0);
    assert_int_equal(s->compensate_retry.backoff_ms, 1);
    assert_int_equal(s->compensate_retry.max_backoff_ms, 120000);
    definition_free(&def);

    /* The longest name allowed. */
    char doc[512];
    char name[DEF_MAX_NAME_LEN + 1];
    memset(name, 'n', DEF_MAX_NAME_LEN);
    name[DEF_MAX_NAME_LEN] = '\0';
    snprintf(doc, sizeof(doc),
             "{'name':'%s','version':1,'steps':[{'name':'%s','service':'s',"
             "'action':'a'}]}",
             name, name);
    def = parse_ok(doc);
    assert_int_equal(strlen(def->name), DEF_MAX_NAME_LEN);
    assert_int_equal(definition_step_index(def, name), 0);
    definition_free(&def);
}

static void test_duration_units(void **state)
{
    (void)state;
    struct definition *def =
        parse_ok(HEAD "{'name':'a','service':'s','action':'x','timeout':'1500ms'},"
                      "{'name':'b','service':'s','action':'x','timeout':'2s'},"
                      "{'name':'c','service':'s','action':'x','timeout':'3m'},"
                      "{'name':'d','service':'s','action':'x','timeout':'1h'}]}");
    assert_int_equal(def->steps[0].timeout_ms, 1500);
    assert_int_equal(def->steps[1].timeout_ms, 2000);
    assert_int_equal(def->steps[2].timeout_ms, 180000);
    assert_int_equal(def->steps[3].timeout_ms, 3600000);
    definition_free(&def);
}

static void test_checkout_graph(void **state)
{
    (void)state;
    struct definition *def =
        parse_ok("{'name':'checkout','version':3,'timeout':'30s','steps':["
                 "{'name':'reserve','service':'inventory','action':'reserve'},"
                 "{'name':'charge','service':'payment','action':'charge','after':[]},"
                 "{'name':'ship','service':'shipping','action':'ship','kind':'pivot',"
                 "'after':['charge','reserve']},"
                 "{'name':'notify','service':'mail','action':'send','kind':'retriable'},"
                 "{'name':'receipt','service':'mail','action':'receipt','kind':'retriable',"
                 "'after':['ship']}]}");
    assert_int_equal(def->timeout_ms, 30000);
    assert_int_equal(def->n_steps, 5);
    assert_int_equal(def->n_stages, 3);
    assert_int_equal(def->pivot, 2);

    static const struct {
        uint16_t n_after, after[2], n_dependents, dependents[2], stage;
        enum def_kind kind;
    } want[] = {
        {0, {0}, 1, {2}, 0, DEF_KIND_COMPENSATABLE}, {0, {0}, 1, {2}, 0, DEF_KIND_COMPENSATABLE},
        {2, {0, 1}, 2, {3, 4}, 1, DEF_KIND_PIVOT},   {1, {2}, 0, {0}, 2, DEF_KIND_RETRIABLE},
        {1, {2}, 0, {0}, 2, DEF_KIND_RETRIABLE},
    };
    for (uint16_t i = 0; i < 5; i++) {
        const struct def_step *s = &def->steps[i];
        assert_int_equal(s->kind, want[i].kind);
        assert_int_equal(s->stage, want[i].stage);
        assert_int_equal(s->n_after, want[i].n_after);
        for (uint16_t k = 0; k < s->n_after; k++)
            assert_int_equal(s->after[k], want[i].after[k]);
        assert_int_equal(s->n_dependents, want[i].n_dependents);
        for (uint16_t k = 0; k < s->n_dependents; k++)
            assert_int_equal(s->dependents[k], want[i].dependents[k]);
    }
    assert_int_equal(definition_step_index(def, "reserve"), 0);
    assert_int_equal(definition_step_index(def, "receipt"), 4);
    assert_int_equal(definition_step_index(def, "nope"), -1);
    assert_int_equal(definition_step_index(def, NULL), -1);
    assert_int_equal(definition_step_index(NULL, "ship"), -1);
    definition_free(&def);
}

static void test_forward_reference(void **state)
{
    (void)state;
    /* A step may wait for one listed after it; stages follow the graph, not the list. */
    struct definition *def = parse_ok(HEAD "{'name':'b','service':'s','action':'x','after':['a']},"
                                           "{'name':'a','service':'s','action':'x','after':[]},"
                                           "{'name':'c','service':'s','action':'x'}]}");
    assert_int_equal(def->steps[0].stage, 1);
    assert_int_equal(def->steps[1].stage, 0);
    assert_int_equal(def->steps[2].stage, 1); /* implicit: after a, the one listed before */
    assert_int_equal(def->steps[2].n_after, 1);
    assert_int_equal(def->steps[2].after[0], 1);
    assert_int_equal(def->steps[1].n_dependents, 2);
    assert_int_equal(def->steps[1].dependents[0], 0);
    assert_int_equal(def->steps[1].dependents[1], 2);
    assert_int_equal(def->n_stages, 2);
    definition_free(&def);
}

static void test_kind_order_valid(void **state)
{
    (void)state;
#define ST(n, extra) "{'name':'" n "','service':'s','action':'x'" extra "}"
    static const char *const docs[] = {
        /* only compensatable, side by side */
        HEAD ST("a", "") "," ST("b", ",'after':[]") "]}",
        /* a lone pivot; lone retriable steps side by side */
        HEAD ST("p", ",'kind':'pivot'") "]}",
        HEAD ST("r", ",'kind':'retriable'") "," ST("q", ",'kind':'retriable','after':[]") "]}",
        /* a diamond around the pivot */
        HEAD ST("a", "") "," ST("b", ",'after':[]") "," ST(
            "p",
            ",'kind':'pivot','after':['a','"
            "b']") "," ST("r1",
                          ",'kind':'retriable'") "," ST("r2",
                                                        ",'kind':'retriable','after':['p']") "]}",
        /* no pivot: retriable after every compensatable step */
        HEAD ST("a", "") "," ST("b", ",'after':[]") "," ST(
            "r", ",'kind':'retriable','after':['a','b']") "]}",
        /* waiting through another step is enough */
        HEAD ST("a", "") "," ST("b", "") "," ST("p", ",'kind':'pivot'") "," ST(
            "r", ",'kind':'retriable'") "," ST("r2", ",'kind':'retriable'") "]}",
        /* a pivot first, retriable steps after it */
        HEAD ST("p", ",'kind':'pivot'") "," ST("r", ",'kind':'retriable'") "]}",
    };
#undef ST
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        struct definition *def = parse_ok(docs[i]);
        definition_free(&def);
    }
}

static void test_2pc(void **state)
{
    (void)state;
    struct definition *def =
        parse_ok("{'name':'transfer','version':1,'mode':'2pc','steps':["
                 "{'name':'debit','service':'bank-a','action':'debit','compensate_retry':{'max_"
                 "attempts':0}},"
                 "{'name':'credit','service':'bank-b','action':'credit','after':[]}]}");
    assert_int_equal(def->mode, DEF_MODE_2PC);
    assert_int_equal(def->pivot, -1);
    assert_int_equal(def->n_stages, 1);
    for (int i = 0; i < 2; i++)
        assert_int_equal(def->steps[i].kind, DEF_KIND_COMPENSATABLE);
    assert_int_equal(def->steps[0].compensate_retry.max_attempts, 0);
    assert_int_equal(def->steps[1].compensate_retry.max_attempts, 10);
    assert_null(strstr(def->canonical, "\"kind\""));
    assert_non_null(strstr(def->canonical, "\"mode\":\"2pc\""));
    definition_free(&def);
}

static void test_free_null(void **state)
{
    (void)state;
    struct definition *def = NULL;
    definition_free(&def);
    definition_free(NULL);
    assert_null(def);
}

/* --- canonical form and hash --------------------------------------------- */

#define PAY_DOC                                                                                 \
    "{'name':'pay','version':2,'steps':[{'name':'a','service':'s','action':'x'},{'name':'b',"   \
    "'service':'s','action':'y','kind':'pivot'},{'name':'c','service':'m','action':'z','kind':" \
    "'retriable'}]}"

static void test_canonical_text(void **state)
{
    (void)state;
    struct definition *def = parse_ok(PAY_DOC);
    char *want = json_of(
        "{'name':'pay','version':2,'mode':'saga','steps':["
        "{'name':'a','service':'s','action':'x','kind':'compensatable','after':[],"
        "'timeout':'10000ms','retry':{'max_attempts':3,'backoff':'100ms','max_backoff':'10000ms'},"
        "'compensate_retry':{'max_attempts':10,'backoff':'100ms','max_backoff':'10000ms'}},"
        "{'name':'b','service':'s','action':'y','kind':'pivot','after':['a'],'timeout':'10000ms',"
        "'retry':{'max_attempts':3,'backoff':'100ms','max_backoff':'10000ms'}},"
        "{'name':'c','service':'m','action':'z','kind':'retriable','after':['b'],"
        "'timeout':'10000ms','retry':{'max_attempts':0,'backoff':'100ms','max_backoff':'10000ms'}}"
        "]}");
    assert_string_equal(def->canonical, want);
    assert_int_equal(def->canonical_len, strlen(want));
    /* Computed independently from the text above. */
    assert_string_equal(def->hash,
                        "01754ce0bc3c57510f920f45a3b6c5d7adfa4eefdacb3e0e83fc9e1e565191cf");
    free(want);

    /* A saga timeout, when set, follows the mode. */
    definition_free(&def);
    def = parse_ok("{'name':'t','version':1,'timeout':'1m','steps':[{'name':'a','service':'s',"
                   "'action':'x'}]}");
    assert_non_null(strstr(def->canonical, "\"mode\":\"saga\",\"timeout\":\"60000ms\",\"steps\""));
    definition_free(&def);
}

static void test_canonical_same_meaning(void **state)
{
    (void)state;
    static const char *const same[] = {
        /* keys in another order, spaces and new lines */
        "{ 'steps' : [ { 'action':'x', 'service':'s', 'name':'a' },\n"
        "  {'kind':'pivot','action':'y','name':'b','service':'s'},\n"
        "  {'kind':'retriable','service':'m','action':'z','name':'c'} ],\n"
        "  'version': 2, 'name': 'pay' }\n",
        /* every default written out, in other units */
        "{'name':'pay','version':2,'mode':'saga','steps':["
        "{'name':'a','service':'s','action':'x','kind':'compensatable','after':[],'timeout':'10s',"
        "'retry':{'max_attempts':3,'backoff':'100ms','max_backoff':'10s'},"
        "'compensate_retry':{'max_attempts':10,'backoff':'100ms','max_backoff':'10000ms'}},"
        "{'name':'b','service':'s','action':'y','kind':'pivot','after':['a'],'timeout':'10000ms',"
        "'retry':{'max_backoff':'10s'}},"
        "{'name':'c','service':'m','action':'z','kind':'retriable','after':['b'],"
        "'retry':{'max_attempts':0}}]}",
        /* escapes that spell the same names */
        "{'name':'p\\u0061y','version':2,'steps':[{'name':'\\u0061','service':'s','action':'x'},"
        "{'name':'b','service':'s','action':'y','kind':'pivot','after':['\\u0061']},{'name':'c',"
        "'service':'m','action':'z','kind':'retriable'}]}",
    };
    struct definition *base = parse_ok(PAY_DOC);
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        struct definition *def = parse_ok(same[i]);
        assert_string_equal(def->canonical, base->canonical);
        assert_string_equal(def->hash, base->hash);
        definition_free(&def);
    }
    definition_free(&base);

    /* The order of "after" does not matter. */
    struct definition *x = parse_ok(HEAD "{'name':'a','service':'s','action':'x'},{'name':'b',"
                                         "'service':'s','action':'x','after':[]},{'name':'c',"
                                         "'service':'s','action':'x','after':['b','a']}]}");
    struct definition *y = parse_ok(HEAD "{'name':'a','service':'s','action':'x'},{'name':'b',"
                                         "'service':'s','action':'x','after':[]},{'name':'c',"
                                         "'service':'s','action':'x','after':['a','b']}]}");
    assert_string_equal(x->hash, y->hash);
    definition_free(&x);
    definition_free(&y);
}

static void test_canonical_changes(void **state)
{
    (void)state;
    static const char *const changed[] = {
        PAY_DOC,
        /* version */
        "{'name':'pay','version':3,'steps':[{'name':'a','service':'s','action':'x'},{'name':'b',"
        "'service':'s','action':'y','kind':'pivot'},{'name':'c','service':'m','action':'z','kind':"
        "'retriable'}]}",
        /* saga name */
        "{'name':'paz','version':2,'steps':[{'name':'a','service':'s','action':'x'},{'name':'b',"
        "'service':'s','action':'y','kind':'pivot'},{'name':'c','service':'m','action':'z','kind':"
        "'retriable'}]}",
        /* a step timeout */
        "{'name':'pay','version':2,'steps':[{'name':'a','service':'s','action':'x','timeout':'11s'}"
        ","
        "{'name':'b','service':'s','action':'y','kind':'pivot'},{'name':'c','service':'m','action':"
        "'z','kind':'retriable'}]}",
        /* a retry policy */
        "{'name':'pay','version':2,'steps':[{'name':'a','service':'s','action':'x','retry':{"
        "'max_attempts':4}},{'name':'b','service':'s','action':'y','kind':'pivot'},{'name':'c',"
        "'service':'m','action':'z','kind':'retriable'}]}",
        /* a compensation policy */
        "{'name':'pay','version':2,'steps':[{'name':'a','service':'s','action':'x',"
        "'compensate_retry':{'backoff':'1s'}},{'name':'b','service':'s','action':'y','kind':"
        "'pivot'},{'name':'c','service':'m','action':'z','kind':'retriable'}]}",
        /* a saga timeout */
        "{'name':'pay','version':2,'timeout':'1h','steps':[{'name':'a','service':'s','action':'x'},"
        "{'name':'b','service':'s','action':'y','kind':'pivot'},{'name':'c','service':'m','action':"
        "'z','kind':'retriable'}]}",
        /* a service */
        "{'name':'pay','version':2,'steps':[{'name':'a','service':'s2','action':'x'},{'name':'b',"
        "'service':'s','action':'y','kind':'pivot'},{'name':'c','service':'m','action':'z','kind':"
        "'retriable'}]}",
        /* one more dependency: c now also gets a's output */
        "{'name':'pay','version':2,'steps':[{'name':'a','service':'s','action':'x'},{'name':'b',"
        "'service':'s','action':'y','kind':'pivot'},{'name':'c','service':'m','action':'z','kind':"
        "'retriable','after':['a','b']}]}",
        /* a kind */
        "{'name':'pay','version':2,'steps':[{'name':'a','service':'s','action':'x'},{'name':'b',"
        "'service':'s','action':'y'},{'name':'c','service':'m','action':'z','kind':'retriable'}]}",
        /* the mode */
        "{'name':'pay','version':2,'mode':'2pc','steps':[{'name':'a','service':'s','action':'x'},"
        "{'name':'b','service':'s','action':'y'},{'name':'c','service':'m','action':'z'}]}",
    };
    enum { N = sizeof(changed) / sizeof(changed[0]) };
    char hashes[N][65];
    for (size_t i = 0; i < N; i++) {
        struct definition *def = parse_ok(changed[i]);
        memcpy(hashes[i], def->hash, sizeof(hashes[i]));
        definition_free(&def);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(hashes[i], hashes[j]) == 0)
                print_error("documents %zu and %zu hash alike\n", j, i);
            assert_string_not_equal(hashes[i], hashes[j]);
        }
    }
}

static void test_canonical_round_trip(void **state)
{
    (void)state;
    static const char *const docs[] = {
        PAY_DOC,
        "{'name':'transfer','version':7,'mode':'2pc','timeout':'5m','steps':[{'name':'debit',"
        "'service':'a','action':'d','retry':{'max_attempts':1}},{'name':'credit','service':'b',"
        "'action':'c','after':[],'timeout':'250ms'}]}",
        "{'name':'t','version':1,'steps':[{'name':'b','service':'s','action':'x','after':['a']},"
        "{'name':'a','service':'s','action':'x','after':[]}]}",
    };
    struct def_diags diags = {0};
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        struct definition *def = parse_ok(docs[i]);
        struct definition *again = NULL;
        /* The canonical text is itself a definition, with the same canonical text. */
        assert_int_equal(definition_parse(def->canonical, def->canonical_len, &again, &diags), 0);
        assert_string_equal(again->canonical, def->canonical);
        assert_string_equal(again->hash, def->hash);
        definition_free(&again);
        definition_free(&def);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_document_errors),
        cmocka_unit_test(test_version_errors),
        cmocka_unit_test(test_name_errors),
        cmocka_unit_test(test_mode_timeout_errors),
        cmocka_unit_test(test_steps_errors),
        cmocka_unit_test(test_unknown_keys_errors),
        cmocka_unit_test(test_step_fields_errors),
        cmocka_unit_test(test_kind_errors),
        cmocka_unit_test(test_retry_errors),
        cmocka_unit_test(test_after_errors),
        cmocka_unit_test(test_cycles_errors),
        cmocka_unit_test(test_kind_order_errors),
        cmocka_unit_test(test_all_at_once_errors),
        cmocka_unit_test(test_too_many_steps),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_text_edge_cases),
        cmocka_unit_test(test_utf8_columns),
        cmocka_unit_test(test_diags_print),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_retriable_defaults),
        cmocka_unit_test(test_every_key_given),
        cmocka_unit_test(test_duration_units),
        cmocka_unit_test(test_checkout_graph),
        cmocka_unit_test(test_forward_reference),
        cmocka_unit_test(test_kind_order_valid),
        cmocka_unit_test(test_2pc),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test(test_canonical_text),
        cmocka_unit_test(test_canonical_same_meaning),
        cmocka_unit_test(test_canonical_changes),
        cmocka_unit_test(test_canonical_round_trip),
    };
    return cmocka_run_group_tests_name("definition", tests, NULL, NULL);
}
