/* util_model.c - see util_model.h */
#include "util_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *test_model_path(void) {
    const char *p = getenv("SINKLLM_MODEL");
    return p && *p ? p : "models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

static sk_model *g_model;
static int g_tried;

static void free_model(void) { sk_model_free(g_model); }

sk_model *test_model(void) {
    if (g_tried) return g_model;
    g_tried = 1;
    if (access(test_model_path(), R_OK) != 0) return NULL;
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
