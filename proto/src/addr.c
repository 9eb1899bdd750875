/* HOST:PORT text: see wire/addr.h. */
#include <string.h>

#include "saga/error.h"
#include "wire/addr.h"

int wire_addr_split(const char *text, char *host, size_t host_size, int *port)
{
    if (text == NULL || host == NULL || port == NULL)
        return SAGA_EINVAL;
    const char *hs = text;
    const char *colon;
    size_t hl;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return SAGA_EINVAL;
        hs = text + 1;
        hl = (size_t)(close - hs);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return SAGA_EINVAL;
        hl = (size_t)(colon - text);
    }
    if (hl == 0 || hl >= host_size)
        return SAGA_EINVAL;
    const char *p = colon + 1;
    if (*p == '\0')
        return SAGA_EINVAL;
    long v = 0;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return SAGA_EINVAL;
        v = v * 10 + (*p - '0');
        if (v > 65535)
            return SAGA_EINVAL;
    }
    memcpy(host, hs, hl);
    host[hl] = '\0';
    *port = (int)v;
    return 0;
}
