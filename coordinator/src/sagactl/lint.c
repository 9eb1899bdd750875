/* sagactl lint: validates definition files offline. May touch only the files it
 * is named and stdout/stderr: no coordinator, no database. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/definition.h"
#include "saga/error.h"
#include "sagactl/commands.h"

/* Far above any real definition (DEF_MAX_STEPS steps of a few hundred bytes). */
#define LINT_MAX_FILE (4u << 20)
#define LINT_HASH_LEN 12

struct lint_opts {
    bool quiet;
    bool canonical;
};

static void lint_usage(FILE *out)
{
    fprintf(out,
            "usage: sagactl lint [--quiet] [--canonical] FILE...\n"
            "\n"
            "Validates saga definition files offline: no coordinator, no database.\n"
            "For each valid file prints one line:\n"
            "  FILE: ok name=NAME version=N mode=MODE steps=N stages=[a] [b,c] hash=HASH\n"
            "For each invalid file prints every error, on stderr, as:\n"
            "  FILE:LINE:COLUMN: message\n"
            "FILE may be - for standard input.\n"
            "\n"
            "options:\n"
            "  -q, --quiet      print nothing for valid files\n"
            "      --canonical  print each valid file's canonical body instead of its summary\n"
            "  -h, --help       print this help\n"
            "\n"
            "exit status: 0 if every file is valid, 1 if any is invalid or unreadable,\n"
            "2 on a usage error\n");
}

/* Reads all of `f` into a new buffer. Returns 0, SAGA_ETOOBIG, SAGA_ENOMEM or
 * SAGA_EIO (errno set). */
static int read_all(FILE *f, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return SAGA_ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap >= LINT_MAX_FILE) {
                free(buf);
                return SAGA_ETOOBIG;
            }
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                return SAGA_ENOMEM;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        return SAGA_EIO;
    }
    *out = buf;
    *len = n;
    return 0;
}

static void print_summary(const char *file, const struct definition *def)
{
    printf("%s: ok name=%s version=%u mode=%s steps=%u stages=", file, def->name,
           (unsigned)def->version, def->mode == DEF_MODE_2PC ? "2pc" : "saga",
           (unsigned)def->n_steps);
    for (uint16_t stage = 0; stage < def->n_stages; stage++) {
        bool first = true;
        printf("%s[", stage > 0 ? " " : "");
        for (uint16_t i = 0; i < def->n_steps; i++) {
            if (def->steps[i].stage != stage)
                continue;
            printf("%s%s", first ? "" : ",", def->steps[i].name);
            first = false;
        }
        printf("]");
    }
    printf(" hash=%.*s\n", LINT_HASH_LEN, def->hash);
}

/* Lints one file; returns true if it is a valid definition. */
static bool lint_file(const char *file, const struct lint_opts *opts)
{
    bool is_stdin = strcmp(file, "-") == 0;
    const char *label = is_stdin ? "<stdin>" : file;
    struct def_diags diags = {0};
    struct definition *def = NULL;
    char *text = NULL;
    size_t len = 0;
    bool ok = false;

    FILE *f = is_stdin ? stdin : fopen(file, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open: %s\n", label, strerror(errno));
        return false;
    }
    errno = 0;
    int err = read_all(f, &text, &len);
    if (err == SAGA_EIO)
        fprintf(stderr, "%s: cannot read: %s\n", label, strerror(errno != 0 ? errno : EIO));
    else if (err == SAGA_ETOOBIG)
        fprintf(stderr, "%s: cannot read: larger than %u MiB\n", label, LINT_MAX_FILE >> 20);
    else if (err != 0)
        fprintf(stderr, "%s: cannot read: %s\n", label, saga_strerror(err));
    if (!is_stdin)
        fclose(f);
    if (err != 0)
        goto done;

    err = definition_parse(text, len, &def, &diags);
    if (err == SAGA_EDEFINITION) {
        fflush(stdout);
        def_diags_print(&diags, label, stderr);
        goto done;
    }
    if (err != 0) {
        fprintf(stderr, "%s: %s\n", label, saga_strerror(err));
        goto done;
    }
    ok = true;
    if (opts->canonical)
        printf("%s\n", def->canonical);
    else if (!opts->quiet)
        print_summary(label, def);

done:
    fflush(stdout);
    definition_free(&def);
    def_diags_clear(&diags);
    free(text);
    return ok;
}

int ctl_lint(int argc, char **argv)
{
    struct lint_opts opts = {0};
    int first = 1;

    for (; first < argc; first++) {
        const char *a = argv[first];
        if (strcmp(a, "--") == 0) {
            first++;
            break;
        }
        if (a[0] != '-' || strcmp(a, "-") == 0)
            break;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            lint_usage(stdout);
            return 0;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            opts.quiet = true;
        } else if (strcmp(a, "--canonical") == 0) {
            opts.canonical = true;
        } else {
            fprintf(stderr, "sagactl lint: unknown option '%s'\n", a);
            lint_usage(stderr);
            return 2;
        }
    }
    if (first >= argc) {
        fprintf(stderr, "sagactl lint: no files given\n");
        lint_usage(stderr);
        return 2;
    }

    int status = 0;
    for (int i = first; i < argc; i++) {
        if (!lint_file(argv[i], &opts))
            status = 1;
    }
    return status;
}
