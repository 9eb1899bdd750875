/* The error table: codes to messages and names. Touches nothing but static strings. */
#include "saga/error.h"

const char *saga_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define SAGA_ERRNO_STR(name, num, msg) \
    case SAGA_E##name:                 \
        return msg;
        SAGA_ERRNO_MAP(SAGA_ERRNO_STR)
#undef SAGA_ERRNO_STR
    default:
        return "unknown error";
    }
}

const char *saga_err_name(int err)
{
    switch (err) {
    case 0:
        return "SAGA_OK";
#define SAGA_ERRNO_NAME(name, num, msg) \
    case SAGA_E##name:                  \
        return "SAGA_E" #name;
        SAGA_ERRNO_MAP(SAGA_ERRNO_NAME)
#undef SAGA_ERRNO_NAME
    default:
        return "SAGA_EUNKNOWN";
    }
}
