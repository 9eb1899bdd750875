/* Error codes shared by the SDK, the coordinator and the wire protocol.
 *
 * Every fallible call returns 0 or a negative SAGA_E* code. The numbers are
 * part of the wire protocol (Error frames carry them) and never change. */
#ifndef SAGA_ERROR_H
#define SAGA_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SAGA_EXTERN __attribute__((visibility("default")))
#else
#define SAGA_EXTERN
#endif

/* XX(NAME, number, message) */
#define SAGA_ERRNO_MAP(XX)                                                           \
    XX(INVAL, 1, "invalid argument")                                                 \
    XX(NOMEM, 2, "out of memory")                                                    \
    XX(PROTO, 3, "protocol error: malformed frame or message")                       \
    XX(TOOBIG, 4, "frame or payload over the size limit")                            \
    XX(VERSION, 5, "protocol version not supported")                                 \
    XX(NOTFOUND, 6, "not found")                                                     \
    XX(EXIST, 7, "already exists with different content")                            \
    XX(UNAVAIL, 8, "unavailable: the database or the coordinator cannot be reached") \
    XX(FENCED, 9, "lease lost: another coordinator owns this saga")                  \
    XX(TIMEDOUT, 10, "timed out")                                                    \
    XX(CLOSED, 11, "connection closed")                                              \
    XX(CANCELED, 12, "canceled")                                                     \
    XX(STATE, 13, "not allowed in the current state")                                \
    XX(DEFINITION, 14, "invalid saga definition")                                    \
    XX(NOSERVICE, 15, "no participant serves this service and action")               \
    XX(IO, 16, "input/output error")                                                 \
    XX(AGAIN, 17, "resource busy, try again")                                        \
    XX(ALREADY, 18, "already completed")                                             \
    XX(DB, 19, "database error")                                                     \
    XX(AUTH, 20, "authentication refused")                                           \
    XX(SCHEMA, 21, "database schema is older than this binary: run `sagad migrate`") \
    XX(CONNECT, 22, "cannot connect")                                                \
    XX(INTERNAL, 23, "internal error")

typedef enum saga_errno {
#define SAGA_ERRNO_ENUM(name, num, msg) SAGA_E##name = -(num),
    SAGA_ERRNO_MAP(SAGA_ERRNO_ENUM)
#undef SAGA_ERRNO_ENUM
} saga_errno_t;

/* A static message for `err`: never NULL, never to be freed. */
SAGA_EXTERN const char *saga_strerror(int err);

/* The static symbolic name of `err` ("SAGA_ENOTFOUND"), or "SAGA_EUNKNOWN". */
SAGA_EXTERN const char *saga_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
