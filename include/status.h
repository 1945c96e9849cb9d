/* status.h - error codes and the error record every library call fills.
 *
 * The library never prints and never exits: a failing call returns a
 * non-zero sk_status and, when the caller passed an sk_error, a one-line
 * human message naming what is wrong. Internal invariants (bugs, not bad
 * input) abort through SK_ASSERT with file and line. */
#ifndef SK_STATUS_H
#define SK_STATUS_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

typedef enum sk_status {
    SK_OK = 0,
    SK_ERR_IO,          /* open/read/mmap/write failed */
    SK_ERR_FORMAT,      /* bytes from outside are malformed (GGUF, session file, JSON) */
    SK_ERR_NOMEM,       /* allocation failed */
    SK_ERR_INVALID,     /* a caller-supplied argument is out of range */
    SK_ERR_UNSUPPORTED, /* well-formed but not something we implement */
    SK_ERR_FULL,        /* a bounded resource (context, queue) is full */
} sk_status;

#define SK_ERRMSG_LEN 256

typedef struct sk_error {
    sk_status code;
    char msg[SK_ERRMSG_LEN];
} sk_error;

/* Fill err (if non-NULL) with code and a printf-style message; returns code
 * so that callers can write `return sk_error_set(err, SK_ERR_FORMAT, ...)`. */
sk_status sk_error_set(sk_error *err, sk_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Short name of a status code ("format error", ...). Never NULL. */
const char *sk_status_str(sk_status code);

#define SK_ASSERT(x)                                                          \
    do {                                                                      \
        if (!(x)) {                                                           \
            fprintf(stderr, "%s:%d: internal error: %s\n", __FILE__,          \
                    __LINE__, #x);                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)

#endif
