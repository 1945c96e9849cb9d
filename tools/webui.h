/* webui.h - the browser chat page that `sinkllm serve` answers on GET /.
 *
 * One self-contained HTML document (CSS and vanilla JavaScript inline, no
 * external resources, no build step) compiled into the binary as a string
 * constant. The page talks to POST /v1/chat/completions with SSE streaming,
 * keeps a session id in localStorage (X-Session-Id, so the server keeps the
 * KV cache between turns) and shows the cache fill, the evicted tokens and
 * the decode speed from the "usage" and "sinkllm" objects of the stream.
 *
 * Query parameters the page reads: max_tokens (an integer > 0) and
 * temperature (a number >= 0), passed on in every request. */
#ifndef SK_WEBUI_H
#define SK_WEBUI_H

#include <stddef.h>

/* The page, UTF-8, NUL-terminated; static storage, never freed. */
extern const char sk_webui_html[];

/* strlen(sk_webui_html). */
extern const size_t sk_webui_html_len;

#endif
