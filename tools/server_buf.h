/* server_buf.h - the growing byte buffer of `sinkllm serve` (reply text,
 * stream events, prompts written by server_tools.c).
 *
 * Error convention: SK_OK or SK_ERR_NOMEM; a failed append leaves the
 * buffer as it was. */
#ifndef SK_SERVER_BUF_H
#define SK_SERVER_BUF_H

#include <stddef.h>

#include "sinkllm.h"

/* Append n bytes of s to the growing buffer *buf (*len used, *cap
 * allocated; NULL, 0, 0 to start), keeping it NUL-terminated. Returns SK_OK
 * or SK_ERR_NOMEM (the buffer unchanged). */
sk_status srv_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n);

#endif
