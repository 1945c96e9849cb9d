/* fuzz_file.h - the harnesses' file helpers (not part of the library): a
 * whole file read into memory, and the FNV-1a loop that reseals a mutated
 * file's checksum the way the library's own writers compute it
 * (src/kernels/hash.h).
 *
 * They are not code under test: under clang they carry no coverage or
 * comparison callbacks (a compare per byte of a 60 KB file would dominate
 * a run), and are not inlined, where the attribute would not follow them. */
#ifndef SK_FUZZ_FILE_H
#define SK_FUZZ_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __clang__
#define FUZZ_NOT_UNDER_TEST __attribute__((no_sanitize("coverage"), noinline))
#else
#define FUZZ_NOT_UNDER_TEST
#endif

/* FNV-1a of p[0, n) continued from h (start: 0xcbf29ce484222325). */
static inline FUZZ_NOT_UNDER_TEST uint64_t fuzz_fnv(uint64_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* The whole file at path in a malloc'd buffer of exactly its size, the size
 * in *n; NULL (and *n = 0) if it cannot be read. An empty file gives a
 * 1-byte buffer and *n = 0. Reads to the end, so pipes work too. */
static inline FUZZ_NOT_UNDER_TEST uint8_t *fuzz_slurp(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    uint8_t *b = malloc(cap);
    while (b) {
        if (len == cap) {
            uint8_t *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
        }
        size_t r = fread(b + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    int bad = !b || ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return NULL;
    }
    uint8_t *out = realloc(b, len ? len : 1); /* exact size: a read past it is caught */
    if (!out) out = b;
    *n = len;
    return out;
}

#endif
