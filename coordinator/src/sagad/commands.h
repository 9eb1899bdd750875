/* The subcommands of sagad. Each takes argv from its own name on and returns the exit code. */
#ifndef SAGAD_COMMANDS_H
#define SAGAD_COMMANDS_H

int cmd_version(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
