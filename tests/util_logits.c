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
