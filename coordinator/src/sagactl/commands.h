/* The subcommands of sagactl. Each takes argv from its own name on and returns the exit code. */
#ifndef SAGACTL_COMMANDS_H
#define SAGACTL_COMMANDS_H

int ctl_version(int argc, char **argv);
int ctl_lint(int argc, char **argv);

#endif
