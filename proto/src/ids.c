/* Saga ids in text: the one formatter and parser the SDK and the coordinator
 * share. Pure; touches nothing but its arguments. */
#include <string.h>

#include "saga/types.h"

char *saga_id_format(const uint8_t id[SAGA_ID_LEN], char out[SAGA_ID_TEXT_LEN])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < SAGA_ID_LEN; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[id[i] >> 4];
        out[o++] = hex[id[i] & 15];
    }
    out[o] = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int saga_id_parse(const char *text, uint8_t out[SAGA_ID_LEN])
{
    if (text == NULL || out == NULL)
        return SAGA_EINVAL;
    uint8_t id[SAGA_ID_LEN];
    size_t n = 0;
    for (const char *s = text; *s != '\0'; s++) {
        if (*s == '-')
            continue;
        int v = hexval(*s);
        if (v < 0 || n >= 2 * SAGA_ID_LEN)
            return SAGA_EINVAL;
        if (n % 2 == 0)
            id[n / 2] = (uint8_t)(v << 4);
        else
            id[n / 2] |= (uint8_t)v;
        n++;
    }
    if (n != 2 * SAGA_ID_LEN)
        return SAGA_EINVAL;
    memcpy(out, id, SAGA_ID_LEN);
    return 0;
}
