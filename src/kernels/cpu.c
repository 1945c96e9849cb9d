/* cpu.c - CPU features and the kernel-set choice (cpu.h).
 *
 * The kernel sets are checked with the compiler's __builtin_cpu_supports
 * (which also checks that the OS saves the YMM/ZMM state) plus cpuid for
 * F16C; the report-only features with cpuid leaf 7 and xgetbv. The
 * environment switches and the level are read once, under pthread_once. */
#include "cpu.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- hardware ---------------------------------------------------------- */

/* F16C is CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports does
 * not know "f16c"); the avx2 check already covers OS support of YMM state. */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

/* AVX2 + FMA + F16C, with the OS saving YMM state. */
int sk_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
}

/* AVX2 (above) + AVX-512 F, BW, VL, DQ, VNNI, with the OS saving ZMM state. */
int sk_cpu_has_avx512vnni(void) {
    __builtin_cpu_init();
    return sk_cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}

/* Register of cpuid leaf 7, subleaf sub (0: EAX, 1: EBX, 2: ECX, 3: EDX);
 * 0 where the leaf does not exist. */
static unsigned leaf7(unsigned sub, int reg) {
    unsigned r[4];
    if (!__get_cpuid_count(7, sub, &r[0], &r[1], &r[2], &r[3]))
        return 0;
    return r[reg];
}

/* XCR0, the register state the OS saves; 0 without OSXSAVE (leaf 1 ECX 27). */
static uint64_t xcr0(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)))
        return 0;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static int os_has_zmm(void) { return (xcr0() & 0xe6) == 0xe6; }           /* SSE AVX opmask ZMM */
static int os_has_tiles(void) { return (xcr0() & 0x60000) == 0x60000; }   /* XTILECFG XTILEDATA */

/* Report-only features: the cpuid bit and the OS's register state. */
int sk_cpu_has_avx512bf16(void) { return os_has_zmm() && (leaf7(1, 0) & (1u << 5)); }
int sk_cpu_has_avx512fp16(void) { return os_has_zmm() && (leaf7(0, 3) & (1u << 23)); }
int sk_cpu_has_amx_tile(void) { return os_has_tiles() && (leaf7(0, 3) & (1u << 24)); }
int sk_cpu_has_amx_int8(void) { return os_has_tiles() && (leaf7(0, 3) & (1u << 25)); }

/* ---- the choice ---------------------------------------------------------- */

static sk_isa g_level = SK_ISA_SCALAR;
static int g_nopack;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static int env_set(const char *name) {
    const char *v = getenv(name);
    return v && v[0] && strcmp(v, "0") != 0;
}

static void cpu_init_once(void) {
    g_nopack = env_set("SINKLLM_NOPACK");
    if (env_set("SINKLLM_SCALAR"))
        g_level = SK_ISA_SCALAR;
    else if (sk_cpu_has_avx512vnni())
        g_level = SK_ISA_AVX512VNNI;
    else if (sk_cpu_has_avx2())
        g_level = SK_ISA_AVX2;
}

/* The chosen kernel set (once, thread-safe). */
sk_isa sk_cpu_level(void) {
    pthread_once(&g_once, cpu_init_once);
    return g_level;
}

/* Static name of the chosen kernel set. */
const char *sk_cpu_isa(void) {
    static const char *const names[] = {"scalar", "avx2", "avx512vnni"};
    return names[sk_cpu_level()];
}

/* 1 if SINKLLM_NOPACK was set at the first call. */
int sk_cpu_nopack(void) {
    pthread_once(&g_once, cpu_init_once);
    return g_nopack;
}
