/* server_buf.c - the growing byte buffer (server_buf.h). */
#include "server_buf.h"

#include <stdlib.h>
#include <string.h>

sk_status srv_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *len + n + 1) c *= 2;
        char *t = realloc(*buf, c);
        if (!t) return SK_ERR_NOMEM;
        *buf = t;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return SK_OK;
}
