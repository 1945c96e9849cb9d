/* hash.h - FNV-1a, 64-bit: the integrity checksum of session files,
 * training checkpoints and the model fingerprint (not a signature: it
 * catches corruption, not tampering). Start from SK_FNV_OFFSET and chain
 * calls to hash several buffers as one. */
#ifndef SK_HASH_H
#define SK_HASH_H

#include <stddef.h>
#include <stdint.h>

#define SK_FNV_OFFSET 0xcbf29ce484222325ULL

static inline uint64_t sk_fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

#endif
