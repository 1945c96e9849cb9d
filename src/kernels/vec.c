/* vec.c - dispatch of the attention kernels (vec.h): the reference table
 * and the selected one (the reference with the entries of the kernel set
 * cpu.h chose written over it), both filled once under pthread_once. */
#include "vec.h"

#include <pthread.h>

#include "cpu.h"
#include "vec_impl.h"

static sk_vec_kernels g_ref, g_sel;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

void sk_vec_fill(sk_vec_kernels *t, int isa) {
    sk_vec_ref_fill(t);
    if (isa >= SK_ISA_AVX2) sk_vec_register_avx2(t); /* the AVX-512 and AMX tiers too */
    if (isa >= SK_ISA_AVX512VNNI && sk_cpu_wide512()) sk_vec_register_avx512(t); /* same bits, faster */
}

static void vec_init_once(void) {
    sk_vec_ref_fill(&g_ref);
    sk_vec_fill(&g_sel, sk_cpu_level());
}

/* The selected kernels; a static table, complete, chosen on first call. */
const sk_vec_kernels *sk_vec_get(void) {
    pthread_once(&g_once, vec_init_once);
    return &g_sel;
}

/* The scalar reference kernels. */
const sk_vec_kernels *sk_vec_get_ref(void) {
    pthread_once(&g_once, vec_init_once);
    return &g_ref;
}
