/* util_logits.c - see util_logits.h */
#include "util_logits.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>

int logits_argmax(const float *x, int64_t n) {
    int best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = (int)i;
    return best;
}

float logits_top20_threshold(const float *x, int64_t n) {
    float best[20];
    for (int i = 0; i < 20; i++) best[i] = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (x[i] <= best[19]) continue;
        int j = 19;
        while (j > 0 && best[j - 1] < x[i]) {
            best[j] = best[j - 1];
            j--;
        }
        best[j] = x[i];
    }
    return best[19];
}

int32_t *json_ids(json_t *arr, size_t *n) {
    *n = json_array_size(arr);
    int32_t *ids = malloc(sizeof(int32_t) * (*n + 1));
    if (!ids) {
        fprintf(stderr, "json_ids: out of memory\n");
        abort();
    }
    for (size_t i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

sk_status greedy_follow(sk_context *c, int64_t nv, const int32_t *want, json_t *gaps, size_t nc,
                        double tie_tol, const char *label, int *ties, int *fails, sk_error *err) {
    for (size_t k = 0; k < nc; k++) {
        const float *lg = sk_logits(c);
        int32_t t = logits_argmax(lg, nv);
        if (t != want[k]) {
            double lgap = json_number_value(json_array_get(gaps, k));
            double ogap = lg[t] - lg[want[k]];
            printf("  %s step %zu: ours %d, llama.cpp %d (gaps: llama.cpp %.4f, ours %.4f)\n", label, k, t,
                   want[k], lgap, ogap);
            if (lgap < tie_tol && ogap < tie_tol) (*ties)++;
            else (*fails)++;
            t = want[k]; /* follow llama.cpp's path */
        }
        sk_status st = sk_decode(c, &t, 1, err);
        if (st) return st;
    }
    return SK_OK;
}
