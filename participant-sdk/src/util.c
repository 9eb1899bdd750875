/* libsaga helpers: coordinator addresses, backoff, error mapping.
 * Pure functions; no I/O, no state of their own. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "wire/addr.h"

char *saga__strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

int saga__addr_parse(const char *text, char *host, size_t host_size, int *port)
{
    int p;
    if (wire_addr_split(text, host, host_size, &p) != 0 || p == 0)
        return SAGA_EINVAL; /* a coordinator has a port of its own */
    *port = p;
    return 0;
}

void saga__strv_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int saga__addr_list(const char *list, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (list == NULL)
        return SAGA_EINVAL;
    char **v = NULL;
    size_t count = 0;
    int rc = 0;
    const char *s = list;
    while (*s != '\0') {
        while (*s == ' ' || *s == ',')
            s++;
        if (*s == '\0')
            break;
        const char *e = s;
        while (*e != '\0' && *e != ',' && *e != ' ')
            e++;
        size_t len = (size_t)(e - s);
        char *item = malloc(len + 1);
        if (item == NULL) {
            rc = SAGA_ENOMEM;
            goto fail;
        }
        memcpy(item, s, len);
        item[len] = '\0';
        char host[256];
        int port;
        if (saga__addr_parse(item, host, sizeof(host), &port) != 0) {
            free(item);
            rc = SAGA_EINVAL;
            goto fail;
        }
        char **nv = realloc(v, (count + 1) * sizeof(*v));
        if (nv == NULL) {
            free(item);
            rc = SAGA_ENOMEM;
            goto fail;
        }
        v = nv;
        v[count++] = item;
        s = e;
    }
    if (count == 0) {
        rc = SAGA_EINVAL;
        goto fail;
    }
    *out = v;
    *n = count;
    return 0;
fail:
    saga__strv_free(v, count);
    return rc;
}

uint64_t saga__rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

uint64_t saga__seed(const void *salt)
{
    uint64_t s = uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 32) ^ (uint64_t)(uintptr_t)salt;
    return s != 0 ? s : 0x9e3779b97f4a7c15ull;
}

unsigned saga__backoff(unsigned min_ms, unsigned max_ms, unsigned failures, uint64_t *rng)
{
    uint64_t d = min_ms > 0 ? min_ms : 1;
    for (unsigned i = 0; i < failures && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    uint64_t half = d / 2;
    return (unsigned)(d - (half > 0 ? saga__rand(rng) % (half + 1) : 0));
}

int saga__uv_err(int uv_err)
{
    switch (uv_err) {
    case 0:
        return 0;
    case UV_ENOMEM:
        return SAGA_ENOMEM;
    case UV_ETIMEDOUT:
        return SAGA_ETIMEDOUT;
    case UV_ECANCELED:
        return SAGA_ECANCELED;
    case UV_ECONNREFUSED:
    case UV_ENETUNREACH:
    case UV_EHOSTUNREACH:
    case UV_EADDRNOTAVAIL:
    case UV_EAI_NONAME:
    case UV_EAI_AGAIN:
    case UV_EAI_FAIL:
        return SAGA_ECONNECT;
    case UV_EOF:
    case UV_ECONNRESET:
    case UV_EPIPE:
        return SAGA_ECLOSED;
    case UV_EINVAL:
        return SAGA_EINVAL;
    default:
        return SAGA_EIO;
    }
}
