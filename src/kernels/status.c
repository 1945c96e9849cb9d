/* status.c - the error record (see status.h). */
#include "status.h"

sk_status sk_error_set(sk_error *err, sk_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *sk_status_str(sk_status code) {
    switch (code) {
    case SK_OK: return "ok";
    case SK_ERR_IO: return "i/o error";
    case SK_ERR_FORMAT: return "format error";
    case SK_ERR_NOMEM: return "out of memory";
    case SK_ERR_INVALID: return "invalid argument";
    case SK_ERR_UNSUPPORTED: return "unsupported";
    case SK_ERR_FULL: return "full";
    }
    return "unknown error";
}
