/* tensor.h - a weight matrix or vector as the kernels see it: a typed view
 * into memory they do not own (the model's mmapped file, or its packed
 * copy). Knows nothing of models or layers. */
#ifndef SK_TENSOR_H
#define SK_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"

/* ne[0] is the row length (inputs), ne[1] the number of rows (outputs). */
typedef struct sk_tensor {
    const void *data;
    int type;            /* enum sk_type */
    int64_t ne[2];
    size_t row_size;     /* bytes per row */
    const sk_type_traits *tt;
    const void *packed;  /* the same rows in a pack.h layout, or NULL */
    size_t pack_gs;      /* bytes per packed group of 16 rows */
} sk_tensor;

#endif
