/* The subcommands of sagactl and what they share: the coordinator to talk
 * to, how to report a failure, the exit codes. Each command takes argv from
 * its own name on and returns the exit code. */
#ifndef SAGACTL_COMMANDS_H
#define SAGACTL_COMMANDS_H

#include <stdbool.h>
#include <stdint.h>

#include "saga/client.h"

/* Exit codes (docs/operations.md). */
enum {
    CTL_OK = 0,
    CTL_ERROR = 1,  /* the request failed; stderr says why and what to do */
    CTL_USAGE = 2,  /* bad command line */
    CTL_UNDONE = 3, /* start --wait, watch: the saga was compensated or aborted */
    CTL_STUCK = 4,  /* start --wait, watch: STUCK, or --timeout passed first */
};

#define CTL_DEFAULT_COORDINATOR "127.0.0.1:7420"

/* Set once by main() from the global options and the environment. */
struct ctl {
    const char *coordinator; /* --coordinator, SAGA_COORDINATOR, or the default */
    const char *token;       /* --token or SAGA_AUTH_TOKEN; NULL: none */
    bool color;              /* stdout is a terminal and NO_COLOR is unset */
};

/* The options every command accepts after its name too: --coordinator
 * (getopt value 'C') and --token ('T'). Returns true when `opt` was one of
 * them, and applies it. */
bool ctl_common_opt(struct ctl *ctl, int opt, const char *arg);

/* A blocking client for ctl->coordinator; NULL (reported) on no memory. */
saga_client_t *ctl_client(const struct ctl *ctl);

/* Reports a failed request on stderr, with what to do about it, and returns
 * CTL_ERROR. `what` names the request ("show 3f2a..."); `r` may be NULL. */
int ctl_fail(const struct ctl *ctl, const char *cmd, const char *what, int rc,
             const saga_result_t *r);

/* A usage error: prints "sagactl CMD: message" and the hint to run --help;
 * returns CTL_USAGE. */
int ctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The usage error for the option getopt_long() just refused, given an
 * optstring that starts with ':': `opt` is '?' (unknown) or ':' (missing
 * value). Returns CTL_USAGE. */
int ctl_bad_option(const char *cmd, int opt, int argc, char **argv);

/* The options every command takes, for getopt_long tables. */
#define CTL_OPT_COMMON                                                                      \
    {"coordinator", required_argument, NULL, 'C'}, {"token", required_argument, NULL, 'T'}, \
    {                                                                                       \
        "help", no_argument, NULL, 'h'                                                      \
    }

/* For commands that take exactly one saga ID after their options (at
 * argv[optind]): reports none or more than one as a usage error. Returns 0
 * or CTL_USAGE. */
int ctl_one_id_arg(const char *cmd, int argc, char **argv);

/* Parses a saga id argument; on a bad one reports a usage error. Returns 0
 * or CTL_USAGE. */
int ctl_parse_id(const char *cmd, const char *text, uint8_t id[SAGA_ID_LEN]);

/* The exit code for a saga that stopped in `status` (start --wait, watch). */
int ctl_exit_for(saga_status_t status);

/* Reads a whole file ("-": standard input) into a new NUL-terminated buffer
 * the caller frees. Returns 0, or reports "sagactl CMD: FILE: why" on stderr
 * and returns SAGA_EIO, SAGA_ETOOBIG or SAGA_ENOMEM. */
int ctl_read_file(const char *cmd, const char *path, char **out, size_t *len)
    __attribute__((warn_unused_result));

/* Milliseconds since the epoch. */
uint64_t ctl_now_ms(void);

/* Prints a one-line summary of a saga and its state: "ID STATE (error)". */
void ctl_print_state(const struct ctl *ctl, const saga_info_t *info);

int ctl_version(struct ctl *ctl, int argc, char **argv);
int ctl_lint(int argc, char **argv);
int ctl_define(struct ctl *ctl, int argc, char **argv);
int ctl_start(struct ctl *ctl, int argc, char **argv);
int ctl_show(struct ctl *ctl, int argc, char **argv);
int ctl_watch(struct ctl *ctl, int argc, char **argv);
int ctl_list(struct ctl *ctl, int argc, char **argv);
int ctl_services(struct ctl *ctl, int argc, char **argv);
int ctl_retry(struct ctl *ctl, int argc, char **argv);
int ctl_abort(struct ctl *ctl, int argc, char **argv);
int ctl_resolve(struct ctl *ctl, int argc, char **argv);

#endif
