/* sagactl define: validates definition files with the engine's parser, then
 * registers them with the coordinator. Touches only the files it is named. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/definition.h"
#include "sagactl/commands.h"
#include "sagactl/json.h"

#define DEFINE_HASH_SHOWN 12

struct define_file {
    const char *path;
    char *text;
    size_t len;
};

static void define_usage(FILE *out)
{
    fprintf(out,
            "usage: sagactl define [--json] FILE...\n"
            "\n"
            "Validates every file with the same parser as `sagactl lint`; if all are\n"
            "valid, registers them with the coordinator, in order. For each prints\n"
            "  NAME version N: created (hash H)     stored now\n"
            "  NAME version N: unchanged (hash H)  the same body was already stored\n"
            "Nothing is registered when any file is invalid. FILE may be - (stdin).\n"
            "\n"
            "  --json  one document: {\"definitions\": [{file, name, version, hash, created}]}\n"
            "\n"
            "exit status: 0 all registered, 1 invalid file or refused, 2 usage\n");
}

/* Reads and validates every file; returns the number that failed. */
static size_t define_validate(struct define_file *files, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct define_file *f = &files[i];
        const char *label = strcmp(f->path, "-") == 0 ? "<stdin>" : f->path;
        struct def_diags diags = {0};
        struct definition *def = NULL;

        if (ctl_read_file("define", f->path, &f->text, &f->len) != 0) {
            bad++;
            continue;
        }
        int rc = definition_parse(f->text, f->len, &def, &diags);
        if (rc == SAGA_EDEFINITION) {
            def_diags_print(&diags, label, stderr);
            bad++;
        } else if (rc != 0) {
            fprintf(stderr, "sagactl define: %s: %s\n", label, saga_strerror(rc));
            bad++;
        }
        definition_free(&def);
        def_diags_clear(&diags);
    }
    return bad;
}

int ctl_define(struct ctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'}, CTL_OPT_COMMON, {NULL, 0, NULL, 0}};
    bool json = false;
    int opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (ctl_common_opt(ctl, opt, optarg))
            continue;
        switch (opt) {
        case 'j':
            json = true;
            break;
        case 'h':
            define_usage(stdout);
            return CTL_OK;
        default:
            return ctl_bad_option("define", opt, argc, argv);
        }
    }
    if (optind >= argc)
        return ctl_usage_error("define", "no files given");

    size_t n = (size_t)(argc - optind);
    struct define_file *files = calloc(n, sizeof(*files));
    saga_client_t *client = NULL;
    json_t *list = NULL;
    int status = CTL_ERROR;
    if (files == NULL) {
        fprintf(stderr, "sagactl define: out of memory\n");
        return CTL_ERROR;
    }
    for (size_t i = 0; i < n; i++)
        files[i].path = argv[optind + (int)i];

    size_t bad = define_validate(files, n);
    if (bad > 0) {
        fprintf(stderr, "sagactl define: nothing registered: %zu of %zu file%s invalid\n", bad, n,
                n == 1 ? " is" : "s are");
        goto done;
    }
    client = ctl_client(ctl);
    if (client == NULL)
        goto done;
    if (json && (list = json_array()) == NULL)
        goto done;
    for (size_t i = 0; i < n; i++) {
        saga_result_t *r = NULL;
        int rc = saga_client_define_sync(client, files[i].text, &r);
        if (rc != 0) {
            ctl_fail(ctl, "define", files[i].path, rc, r);
            saga_result_free(&r);
            goto done;
        }
        const char *hash = saga_result_def_hash(r);
        if (json) {
            json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:b}", "file", files[i].path, "name",
                                  saga_result_def_name(r), "version",
                                  (json_int_t)saga_result_def_version(r), "hash", hash, "created",
                                  saga_result_def_created(r));
            if (json_array_append_new(list, o) != 0) {
                saga_result_free(&r);
                goto done;
            }
        } else {
            printf("%s version %u: %s (hash %.*s)\n", saga_result_def_name(r),
                   (unsigned)saga_result_def_version(r),
                   saga_result_def_created(r) ? "created" : "unchanged", DEFINE_HASH_SHOWN, hash);
            fflush(stdout);
        }
        saga_result_free(&r);
    }
    if (json) {
        json_t *doc = json_pack("{s:O}", "definitions", list);
        if (ctl_json_print(doc, stdout) != 0)
            goto done;
    }
    status = CTL_OK;
done:
    json_decref(list);
    saga_client_free(&client);
    for (size_t i = 0; i < n; i++)
        free(files[i].text);
    free(files);
    return status;
}
