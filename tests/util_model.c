/* util_model.c - see util_model.h */
#include "util_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *test_model_path(void) {
    const char *p = getenv("SINKLLM_MODEL");
    return p && *p ? p : "models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

int test_strict(void) {
    const char *p = getenv("SINKLLM_MODEL");
    return p && *p;
}

static sk_model *g_model;
static int g_tried;

static void free_model(void) { sk_model_free(g_model); }

int test_need_file(const char *what, const char *path) {
    if (access(path, R_OK) == 0) return 1;
    if (test_strict()) {
        fprintf(stderr, "FAILED: %s: cannot read %s (required under make test)\n", what, path);
        exit(1);
    }
    printf("skipped: %s: %s not found\n", what, path);
    return 0;
}

sk_model *test_model(void) {
    if (g_tried) return g_model;
    g_tried = 1;
    if (!test_need_file("the model (SINKLLM_MODEL)", test_model_path())) return NULL;
    sk_error err = {0};
    if (sk_model_load(test_model_path(), &g_model, &err)) {
        fprintf(stderr, "cannot load %s: %s\n", test_model_path(), err.msg);
        exit(1);
    }
    atexit(free_model);
    return g_model;
}

const char *test_data_path(const char *rel) {
    static char buf[4096];
    const char *d = getenv("SINKLLM_TESTS_DIR");
    snprintf(buf, sizeof buf, "%s/%s", d && *d ? d : TESTS_DIR, rel);
    return buf;
}

void test_cpu_skip(const char *test, const char *why) { printf("skipped: %s: %s\n", test, why); }
