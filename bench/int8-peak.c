/* int8-peak.c - the int8 multiply-add peak of one core: 12 independent
 * chains of AVX512-VNNI vpdpbusd (64 u8 x s8 products summed into 16 i32
 * each), so that the pre-fill rates of the quantized gemms can be set
 * against what the core can do at all (docs/performance.md, "Zen 5").
 * x86-64 with AVX512-VNNI only; not part of make test. Build and run:
 *   cc -O2 bench/int8-peak.c -o build/int8-peak && build/int8-peak
 */
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
    const long iters = 200000000;
    long n = iters;
    double t0 = now();
    __asm__ volatile("vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
                     "vpternlogd $0xff, %%zmm1, %%zmm1, %%zmm1\n\t"
                     "1:\n\t"
                     "vpdpbusd %%zmm1, %%zmm0, %%zmm2\n\t"
                     "vpdpbusd %%zmm1, %%zmm0, %%zmm3\n\t"
                     "vpdpbusd %%zmm1, %%zmm0, %%zmm4\n\t"
                     "vpdpbusd %%zmm1, %%zmm0, %%zmm5\n\t"
                     "vpdpbusd %%zmm1, %%zmm0, %%zmm6\n\t"
                     "vpdpbusd %%zmm1, %%zmm0, %%zmm7\n\t"
                     "vpdpbusd %%zmm1, %%zmm0, %%zmm8\n\t"
                     "vpdpbusd %%zmm1, %%zmm0, %%zmm9\n\t"
                     "vpdpbusd %%zmm1, %%zmm0, %%zmm10\n\t"
                     "vpdpbusd %%zmm1, %%zmm0, %%zmm11\n\t"
                     "vpdpbusd %%zmm1, %%zmm0, %%zmm12\n\t"
                     "vpdpbusd %%zmm1, %%zmm0, %%zmm13\n\t"
                     "dec %0\n\t"
                     "jnz 1b"
                     : "+r"(n)
                     :
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                       "xmm10", "xmm11", "xmm12", "xmm13", "cc");
    double t = now() - t0;
    printf("int8 peak, one core: %.1f GMAC/s (%.2f G vpdpbusd/s)\n", (double)iters * 12 * 64 / t / 1e9,
           (double)iters * 12 / t / 1e9);
    return 0;
}
