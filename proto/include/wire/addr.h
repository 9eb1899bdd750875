/* HOST:PORT text, the one parser the coordinator and libsaga share. */
#ifndef SAGA_WIRE_ADDR_H
#define SAGA_WIRE_ADDR_H

#include <stddef.h>

/* Splits "host:port" or "[v6 address]:port" into `host` (without brackets,
 * NUL-terminated) and `port` (0-65535; a caller that cannot use 0 refuses
 * it). The host must be non-empty and fit `host_size` with its NUL; the port
 * is decimal digits only. Returns 0, or SAGA_EINVAL with `host` and `port`
 * untouched. Touches nothing but its arguments. */
int wire_addr_split(const char *text, char *host, size_t host_size, int *port);

#endif
