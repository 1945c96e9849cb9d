/* tmm.h - the f32 matmul kernels of the trainer, on rectangles of the
 * output, behind one dispatch point: the scalar reference (tops_f32.c, the
 * template's loops) or the AVX2+FMA twin (tmm_avx2.c), chosen once from the
 * CPU tier (SINKLLM_ISA=scalar forces the reference).
 *
 * Each output element is computed by one fixed chain of operations that
 * does not depend on the rectangle it falls in, so a split of the work
 * over threads never changes a bit:
 *   fwd    Y[t][o] = x_t . w_o: 8 lanes of FMAs over k < in - in % 8, the
 *          lanes added in a fixed tree, then the tail k with scalar FMAs
 *          (the reference: 8 interleaved partial sums of products, a tree,
 *          the tail);
 *   acc    out_r[i] += sum_j c_r[j * cs] * M[j][i] for j ascending, one
 *          FMA (reference: multiply-add) per term. */
#ifndef SK_TRAIN_TMM_H
#define SK_TRAIN_TMM_H

#include <stdint.h>

typedef struct tr_mm_kernels {
    /* Y[t * out + o] = sum_k X[t * in + k] W[o * in + k] for t in [t0, t1), o in [o0, o1) */
    void (*fwd)(const float *X, const float *W, float *Y, int64_t t0, int64_t t1, int64_t o0,
                int64_t o1, int64_t in, int64_t out);
    /* out[r * ostride + i] += sum_{j in [j0, j1)} c[r * crs + j * cs] * M[j * in + i]
     * for rows r < nr, i < in */
    void (*acc)(float *out, int64_t ostride, const float *c, int64_t crs, int64_t cs,
                const float *M, int64_t j0, int64_t j1, int64_t in, int64_t nr);
    const char *name;
} tr_mm_kernels;

/* The kernels in use (chosen on first call; thread-safe after the first). */
const tr_mm_kernels *tr_mm_get(void);
/* The scalar reference. */
const tr_mm_kernels *tr_mm_get_ref(void);
/* The AVX2 kernels, NULL when the CPU lacks AVX2 and FMA. */
const tr_mm_kernels *tr_mm_get_avx2(void);
/* tmm_avx2.c's table, whatever the CPU (call only where it has AVX2). */
const tr_mm_kernels *tr_mm_avx2_table(void);

#endif
