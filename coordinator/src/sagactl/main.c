/* sagactl: the operator's command line. Dispatches to one subcommand; owns no state. */
#include <stdio.h>
#include <string.h>

#include "saga/types.h"
#include "sagactl/commands.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"version", ctl_version, "print the version"},
    {"lint", ctl_lint, "validate definition files offline"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: sagactl [--coordinator HOST:PORT] COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int ctl_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("sagactl %s\n", saga_version());
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "sagactl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
