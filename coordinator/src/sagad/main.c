/* sagad: the coordinator's command line. Dispatches to one subcommand; owns no state. */
#include <stdio.h>
#include <string.h>

#include "saga/types.h"
#include "sagad/commands.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"serve", cmd_serve, "run the coordinator"},
    {"version", cmd_version, "print the version"},
    {"migrate", cmd_migrate, "apply pending database migrations"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: sagad COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun `sagad COMMAND --help` for a command's options.\n");
}

int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("sagad %s\n", saga_version());
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
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "sagad: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
