/* cpu.c - CPU features and the kernel-tier choice (cpu.h).
 *
 * The kernel sets are checked with the compiler's __builtin_cpu_supports
 * (which also checks that the OS saves the YMM/ZMM state) plus cpuid for
 * F16C; AMX and the report-only features with cpuid leaf 7 and xgetbv,
 * AMX tile data with Linux's permission request. The environment switches
 * and the level are read once, under pthread_once. */
#include "cpu.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

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

int sk_cpu_wide512(void) {
    unsigned a, b, c, d;
    if (!sk_cpu_has_avx512vnni() || !__get_cpuid(0, &a, &b, &c, &d)) return 0;
    if (b == 0x756e6547u) return 1; /* "Genu"ineIntel: its AVX-512 cores run 512 bits whole */
    if (b != 0x68747541u || !__get_cpuid(1, &a, &b, &c, &d)) return 0; /* not "Auth"enticAMD: unknown */
    unsigned family = (a >> 8) & 0xf;
    if (family == 0xf) family += (a >> 20) & 0xff;
    return family >= 0x1a;
}

/* Report-only features: the cpuid bit and the OS's register state. */
int sk_cpu_has_avx512bf16(void) { return os_has_zmm() && (leaf7(1, 0) & (1u << 5)); }
int sk_cpu_has_avx512fp16(void) { return os_has_zmm() && (leaf7(0, 3) & (1u << 23)); }
int sk_cpu_has_amx_tile(void) { return os_has_tiles() && (leaf7(0, 3) & (1u << 24)); }
int sk_cpu_has_amx_int8(void) { return os_has_tiles() && (leaf7(0, 3) & (1u << 25)); }

/* The tile data (XTILEDATA, xstate component 18) is off for a process
 * until it asks: arch_prctl(ARCH_REQ_XCOMP_PERM, 18) (Linux 5.16+; the
 * constants are the kernel ABI's, spelled out for older headers). Asked
 * once; 1 if granted. */
static int amx_granted;
static pthread_once_t g_amx_once = PTHREAD_ONCE_INIT;

static void amx_request_once(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    if (sk_cpu_has_avx512vnni() && sk_cpu_has_amx_tile() && sk_cpu_has_amx_int8())
        amx_granted = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#endif
}

int sk_cpu_has_amx(void) {
    pthread_once(&g_amx_once, amx_request_once);
    return amx_granted;
}

int sk_cpu_has_isa(sk_isa isa) {
    switch (isa) {
    case SK_ISA_SCALAR: return 1;
    case SK_ISA_AVX2: return sk_cpu_has_avx2();
    case SK_ISA_AVX512VNNI: return sk_cpu_has_avx512vnni();
    case SK_ISA_AMX: return sk_cpu_has_amx();
    default: return 0;
    }
}

sk_isa sk_cpu_best(void) {
    sk_isa best = SK_ISA_SCALAR;
    for (int i = 1; i < SK_ISA_COUNT; i++)
        if (sk_cpu_has_isa((sk_isa)i)) best = (sk_isa)i;
    return best;
}

/* ---- names ---------------------------------------------------------------- */

static const char *const isa_names[SK_ISA_COUNT] = {"scalar", "avx2", "avx512", "amx"};

const char *sk_isa_name(sk_isa isa) {
    return (int)isa >= 0 && isa < SK_ISA_COUNT ? isa_names[isa] : NULL;
}

int sk_isa_from_name(const char *name) {
    for (int i = 0; i < SK_ISA_COUNT; i++)
        if (name && !strcmp(name, isa_names[i])) return i;
    return -1;
}

const char *sk_isa_note(sk_isa isa) {
    if (isa == SK_ISA_AMX) return "no AMX kernels yet: the avx512 kernels";
    if (isa == SK_ISA_AVX512VNNI && sk_cpu_wide512()) return "512-bit attention and Q6_K kernels";
    return "";
}

/* ---- the choice ----------------------------------------------------------- */

static sk_isa g_level = SK_ISA_SCALAR;
static int g_nopack;
static char g_error[160];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static int env_set(const char *name) {
    const char *v = getenv(name);
    return v && v[0] && strcmp(v, "0") != 0;
}

/* The tier asked for: SINKLLM_ISA's, scalar under SINKLLM_SCALAR, the best
 * without either; on an error g_error says why and the best is used. */
static void cpu_init_once(void) {
    g_nopack = env_set("SINKLLM_NOPACK");
    const sk_isa best = sk_cpu_best();
    const char *want = getenv("SINKLLM_ISA");
    g_level = best;
    if (env_set("SINKLLM_SCALAR")) {
        if (want && want[0] && strcmp(want, "scalar") != 0)
            snprintf(g_error, sizeof g_error,
                     "SINKLLM_SCALAR=1 and SINKLLM_ISA=%.40s disagree (SINKLLM_SCALAR=1 means "
                     "SINKLLM_ISA=scalar)", want);
        else
            g_level = SK_ISA_SCALAR;
        return;
    }
    if (!want || !want[0]) return;
    int t = sk_isa_from_name(want);
    if (t < 0)
        snprintf(g_error, sizeof g_error,
                 "SINKLLM_ISA=%.40s: unknown tier (one of amx, avx512, avx2, scalar)", want);
    else if (t > (int)best)
        snprintf(g_error, sizeof g_error, "SINKLLM_ISA=%s: this CPU's best tier is %s", want,
                 isa_names[best]);
    else
        g_level = (sk_isa)t;
}

/* The chosen tier (once, thread-safe). */
sk_isa sk_cpu_level(void) {
    pthread_once(&g_once, cpu_init_once);
    return g_level;
}

/* Static name of the chosen tier. */
const char *sk_cpu_isa(void) { return isa_names[sk_cpu_level()]; }

/* NULL or the message of a switch that could not be honoured. */
const char *sk_cpu_error(void) {
    pthread_once(&g_once, cpu_init_once);
    return g_error[0] ? g_error : NULL;
}

/* 1 if SINKLLM_NOPACK was set at the first call. */
int sk_cpu_nopack(void) {
    pthread_once(&g_once, cpu_init_once);
    return g_nopack;
}
