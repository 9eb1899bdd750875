/* The SDK's version string. Touches nothing. */
#include "saga/types.h"

#ifndef SAGA_VERSION_STRING
#define SAGA_VERSION_STRING "0.1.0"
#endif

const char *saga_version(void)
{
    return SAGA_VERSION_STRING;
}
