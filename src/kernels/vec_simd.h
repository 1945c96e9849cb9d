/* vec_simd.h - the attention kernels that AVX2 and AVX-512 share, written
 * once over a vector width and built once per instruction set.
 *
 * Not a public header: included only by vec_avx2.c and vec_avx512.c, each
 * compiled with its own ISA flags (Makefile, by file name), so everything
 * here is static. Before including it, the file defines
 *   VF            the float vector type (__m256, __m512)
 *   VW            its lanes (8, 16)
 *   VF_LOADH(p)   VW halves at p widened to floats (vcvtph2ps)
 *   VF_LOAD(p), VF_STORE(p, v), VF_SET1(x), VF_MUL(a, b), VF_FMA(a, b, c) (a b + c)
 *   VF_SUM(v)     the sum of the lanes, as a float
 * and gets
 *   kq_keys   keys j0 .. n-1 one at a time: widened once, then per query a
 *             product over hd in VW-lane pieces and one horizontal sum;
 *   av_cols   VW output columns at a time, n_rep accumulators in registers,
 *             V read once per column piece;
 *   kq_fits, av_fits   the shapes they handle (else the reference).
 * Every lane follows the reference's products; the sums differ only in
 * order (tests/test_vec.c holds them to a tolerance). */
#ifndef SK_VEC_SIMD_H
#define SK_VEC_SIMD_H

#ifndef VF_SUM
#error "define the VF_* macros before including vec_simd.h"
#endif

#include "vec_impl.h"

/* kq_keys needs hd <= 256 (its widened key lives in registers/stack) */
static inline int kq_fits(int hd, int n_rep) { return hd % 16 == 0 && n_rep <= SK_VEC_MAX_REP && hd <= 256; }
static inline int av_fits(int hd, int n_rep) { return hd % 16 == 0 && n_rep <= SK_VEC_MAX_REP; }

/* s[r * ss + j] = scale * q_r . K_j for j0 <= j < n, r < n_rep; kq_fits. */
static void kq_keys(int64_t j0, int64_t n, int hd, const uint16_t *K, int n_rep, const float *q,
                    float scale, float *s, size_t ss) {
    const int nc = hd / VW;
    for (int64_t j = j0; j < n; j++) {
        const uint16_t *k = K + (size_t)j * hd;
        VF kv[256 / VW]; /* key j widened: (hd / VW) vectors of VW floats */
        for (int c = 0; c < nc; c++) kv[c] = VF_LOADH(k + VW * c);
        for (int r = 0; r < n_rep; r++) {
            const float *qr = q + (size_t)r * hd;
            VF acc = VF_MUL(kv[0], VF_LOAD(qr));
            for (int c = 1; c < nc; c++) acc = VF_FMA(kv[c], VF_LOAD(qr + VW * c), acc);
            s[(size_t)r * ss + j] = VF_SUM(acc) * scale;
        }
    }
}

/* out[r * hd + i] += sum_j a[r * as + j] V[j * hd + i], r < n_rep; av_fits. */
static void av_cols(int64_t n, int hd, const uint16_t *V, int n_rep, const float *a, size_t as,
                    float *out) {
    for (int c = 0; c < hd / VW; c++) {
        VF acc[SK_VEC_MAX_REP];
        for (int r = 0; r < n_rep; r++) acc[r] = VF_LOAD(out + (size_t)r * hd + VW * c);
        for (int64_t j = 0; j < n; j++) {
            VF v = VF_LOADH(V + (size_t)j * hd + VW * c);
            for (int r = 0; r < n_rep; r++) acc[r] = VF_FMA(VF_SET1(a[(size_t)r * as + j]), v, acc[r]);
        }
        for (int r = 0; r < n_rep; r++) VF_STORE(out + (size_t)r * hd + VW * c, acc[r]);
    }
}

#endif /* SK_VEC_SIMD_H */
