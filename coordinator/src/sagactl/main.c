/* sagactl: the operator's command line. Reads the global options and the
 * environment, then dispatches to one subcommand; owns no other state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "saga/types.h"
#include "sagactl/commands.h"

static int run_lint(struct ctl *ctl, int argc, char **argv)
{
    (void)ctl;
    return ctl_lint(argc, argv);
}

static const struct command {
    const char *name;
    int (*run)(struct ctl *ctl, int argc, char **argv);
    const char *args;
    const char *summary;
} commands[] = {
    {"lint", run_lint, "FILE...", "validate definition files offline"},
    {"define", ctl_define, "FILE...", "validate, then register definitions"},
    {"start", ctl_start, "NAME [--input JSON] [--wait]", "start a saga, print its id"},
    {"show", ctl_show, "ID [--json]", "a saga's state, steps and timeline"},
    {"list", ctl_list, "[--status S] [--since DUR]", "recent sagas, newest first"},
    {"watch", ctl_watch, "ID", "print a saga's events as they happen"},
    {"services", ctl_services, "[--json]", "connected participants"},
    {"retry", ctl_retry, "ID", "resume a STUCK saga"},
    {"abort", ctl_abort, "ID", "stop a running saga: compensate it"},
    {"resolve", ctl_resolve, "ID --as STATE", "declare a STUCK saga finished by hand"},
    {"version", ctl_version, "", "print the version"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: sagactl [--coordinator HOST:PORT] [--token TOKEN] COMMAND [ARGS]\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-9s %-30s %s\n", commands[i].name, commands[i].args, commands[i].summary);
    fprintf(out,
            "\n"
            "  --coordinator HOST:PORT[,...]  SAGA_COORDINATOR  default " CTL_DEFAULT_COORDINATOR
            "\n"
            "  --token TOKEN                  SAGA_AUTH_TOKEN   sagad's --auth-token\n"
            "\n"
            "Run `sagactl COMMAND --help` for a command's options. Exit status: 0 done,\n"
            "1 error, 2 usage; start --wait and watch: 3 compensated or aborted,\n"
            "4 stuck or timed out.\n");
}

int ctl_version(struct ctl *ctl, int argc, char **argv)
{
    (void)ctl;
    (void)argc;
    (void)argv;
    printf("sagactl %s\n", saga_version());
    return CTL_OK;
}

/* NO_COLOR (https://no-color.org): any non-empty value turns colour off. */
static bool want_color(void)
{
    const char *no = getenv("NO_COLOR");
    const char *term = getenv("TERM");
    if (no != NULL && no[0] != '\0')
        return false;
    if (term != NULL && strcmp(term, "dumb") == 0)
        return false;
    return isatty(STDOUT_FILENO) == 1;
}

int main(int argc, char **argv)
{
    struct ctl ctl = {.coordinator = getenv("SAGA_COORDINATOR"),
                      .token = getenv("SAGA_AUTH_TOKEN"),
                      .color = want_color()};
    if (ctl.coordinator == NULL || ctl.coordinator[0] == '\0')
        ctl.coordinator = CTL_DEFAULT_COORDINATOR;
    if (ctl.token != NULL && ctl.token[0] == '\0')
        ctl.token = NULL;

    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return CTL_OK;
        }
        if (strcmp(a, "--version") == 0)
            return ctl_version(&ctl, 0, NULL);
        if (strncmp(a, "--coordinator=", 14) == 0) {
            ctl.coordinator = a + 14;
        } else if (strncmp(a, "--token=", 8) == 0) {
            ctl.token = a + 8;
        } else if (strcmp(a, "--coordinator") == 0 || strcmp(a, "--token") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sagactl: %s needs a value\n", a);
                usage(stderr);
                return CTL_USAGE;
            }
            val = argv[++i];
            if (a[2] == 'c')
                ctl.coordinator = val;
            else
                ctl.token = val;
        } else {
            fprintf(stderr, "sagactl: unknown option '%s'\n", a);
            usage(stderr);
            return CTL_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return CTL_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        usage(stdout);
        return CTL_OK;
    }
    for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
        if (strcmp(argv[i], commands[k].name) == 0)
            return commands[k].run(&ctl, argc - i, argv + i);
    }
    fprintf(stderr, "sagactl: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return CTL_USAGE;
}
