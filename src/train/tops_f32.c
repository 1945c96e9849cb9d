/* tops_f32.c - the training ops in single precision (the trainer's), and
 * the dispatch of their matmul kernels (tmm.h). */
#include <pthread.h>
#include <string.h>

#include "kernels/cpu.h"
#include "tmm.h"
#include "tops.h"

#define R float
#define SFX f32
#define EXP expf
#define TR_MM_DISPATCH 1
#include "tops_impl.h"

static const tr_mm_kernels g_ref = {mm_fwd_ref_f32, mm_acc_ref_f32, "scalar"};
static const tr_mm_kernels *g_mm;
static pthread_once_t g_mm_once = PTHREAD_ONCE_INIT;

static void mm_choose(void) {
    g_mm = strcmp(sk_cpu_isa(), "scalar") != 0 && sk_cpu_has_avx2() ? tr_mm_avx2_table() : &g_ref;
}

const tr_mm_kernels *tr_mm_get(void) {
    pthread_once(&g_mm_once, mm_choose);
    return g_mm;
}
const tr_mm_kernels *tr_mm_get_ref(void) { return &g_ref; }
const tr_mm_kernels *tr_mm_get_avx2(void) { return sk_cpu_has_avx2() ? tr_mm_avx2_table() : NULL; }
