/* cpu.h - what the CPU can do and which kernel tier the library uses.
 *
 * The one place that asks the processor (cpuid, xgetbv, and Linux's
 * arch_prctl for AMX tile data) and reads the environment switches of the
 * kernels:
 *   SINKLLM_ISA=NAME   run the tier NAME (below), which must be at or below
 *                      the best the CPU has: a higher or unknown name is an
 *                      error (sk_cpu_error), never a crash
 *   SINKLLM_SCALAR=1   alias of SINKLLM_ISA=scalar (kept for scripts)
 *   SINKLLM_NOPACK=1   keep weights in the file layout (no packed matmul)
 * (for the two flags any value but "" and "0" sets them). Each is read
 * once, on first use. Every kernel family (quant.c, vec.c, pack.c) picks
 * its table from sk_cpu_level(); nothing else in the library queries the
 * CPU.
 *
 * The sk_cpu_has_* checks are the hardware's (and the OS's: the register
 * state must be enabled), independent of the switches; tests use them to
 * run every tier the machine has and report the others as skipped. */
#ifndef SK_CPU_H
#define SK_CPU_H

/* Kernel tiers, each a superset of the one before. */
typedef enum sk_isa {
    SK_ISA_SCALAR = 0,     /* "scalar": the reference kernels */
    SK_ISA_AVX2 = 1,       /* "avx2": AVX2 + FMA + F16C */
    SK_ISA_AVX512VNNI = 2, /* "avx512": the above + AVX-512 F, BW, VL, DQ, VNNI */
    SK_ISA_AMX = 3,        /* "amx": the above + AMX-TILE, AMX-INT8, tile data
                              granted by the OS. No AMX kernels exist yet: this
                              tier runs the avx512 kernels (sk_isa_note). */
    SK_ISA_COUNT = 4,
} sk_isa;

/* Kernel sets the hardware supports. */
int sk_cpu_has_avx2(void);
int sk_cpu_has_avx512vnni(void);

/* Features no kernel uses yet, for system reports: AVX512_BF16,
 * AVX512_FP16, AMX-TILE and AMX-INT8 (cpuid and the OS's XCR0 tile bits;
 * a process must still request the tile data, see sk_cpu_has_amx). */
int sk_cpu_has_avx512bf16(void);
int sk_cpu_has_avx512fp16(void);
int sk_cpu_has_amx_tile(void);
int sk_cpu_has_amx_int8(void);

/* The amx tier: AVX-512 VNNI, AMX-TILE and AMX-INT8, and the kernel granted
 * this process the tile data (arch_prctl ARCH_REQ_XCOMP_PERM, asked once,
 * on first call; always 0 off Linux). */
int sk_cpu_has_amx(void);

/* 1 if the CPU runs 512-bit vector operations at full width, so that a
 * 16-lane float kernel does twice an 8-lane one's work a cycle: Intel's
 * AVX-512 cores and AMD from Zen 5 (family 0x1A) on; 0 on Zen 4 (family
 * 0x19), which splits them into two 256-bit halves, on other vendors'
 * CPUs (not measured) and without AVX-512.
 * Chooses among kernels of the same bits (vec.c), never the results. */
int sk_cpu_wide512(void);

/* 1 if the hardware can run tier isa (scalar: always). */
int sk_cpu_has_isa(sk_isa isa);

/* The best tier the hardware has. */
sk_isa sk_cpu_best(void);

/* Static name of a tier ("amx", "avx512", "avx2", "scalar"), NULL if out of
 * range; the tier of a name, -1 if unknown. */
const char *sk_isa_name(sk_isa isa);
int sk_isa_from_name(const char *name);

/* What a tier's name does not say, for reports (static): for amx, that it
 * runs the avx512 kernels; for avx512 on a CPU that runs 512 bits whole
 * (sk_cpu_wide512), that its 512-bit attention and Q6_K kernels are in;
 * "" otherwise. */
const char *sk_isa_note(sk_isa isa);

/* The tier in use: SINKLLM_ISA's (SINKLLM_SCALAR's) where valid, otherwise
 * the best the CPU has. Decided once, thread-safe. */
sk_isa sk_cpu_level(void);

/* Name of sk_cpu_level() (static). */
const char *sk_cpu_isa(void);

/* NULL, or why SINKLLM_ISA / SINKLLM_SCALAR could not be honoured (an
 * unknown name, a tier the CPU lacks, the two disagreeing); the level is
 * then the best the CPU has, and model loading fails with this message.
 * Static, decided once. */
const char *sk_cpu_error(void);

/* 1 if SINKLLM_NOPACK is set. */
int sk_cpu_nopack(void);

#endif
