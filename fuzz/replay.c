/* replay.c - runs a libFuzzer harness over files, without libFuzzer: the
 * corpus replay of `make test` (tests/run-tests.sh), built with the normal
 * compiler against the normal (or sanitizer) build of the library.
 *
 *   replay_TARGET PATH...   each PATH a file, or a directory whose regular
 *                           files are replayed in name order
 * Calls LLVMFuzzerInitialize once when the harness has one, then
 * LLVMFuzzerTestOneInput on each file's bytes. A harness reports a finding
 * by crashing or aborting, so a finding fails the replay. Exits 0 and
 * prints "replay: N inputs" when all ran, 2 when a path cannot be read or
 * nothing was replayed (a missing corpus must not pass as an empty one). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static size_t g_count;

/* one file: read whole (an exact-size buffer, so that reading past the
 * input is caught), hand to the harness; 0, or -1 if unreadable */
static int run_file(const char *path) {
    size_t n;
    uint8_t *in = fuzz_slurp(path, &n);
    if (!in) return -1;
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    g_count++;
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* a directory: its regular files in name order (not recursive) */
static int run_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            char **nn = realloc(names, sizeof *nn * (cap = cap ? cap * 2 : 64));
            if (!nn) {
                rc = -1;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (names) qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (rc == 0 && stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && run_file(path)) {
            fprintf(stderr, "replay: cannot read %s\n", path);
            rc = -1;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE-OR-DIR...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        int r = stat(argv[i], &sb) != 0 ? -1 : S_ISDIR(sb.st_mode) ? run_dir(argv[i]) : run_file(argv[i]);
        if (r) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            return 2;
        }
    }
    if (g_count == 0) {
        fprintf(stderr, "replay: no inputs\n");
        return 2;
    }
    printf("replay: %zu inputs\n", g_count);
    return 0;
}
