/* cpu.h - what the CPU can do and which kernel set the library uses.
 *
 * The one place that asks the processor (cpuid, xgetbv) and reads the
 * environment switches of the kernels:
 *   SINKLLM_SCALAR=1   use the scalar reference kernels everywhere
 *   SINKLLM_NOPACK=1   keep weights in the file layout (no packed matmul)
 * (any value but "" and "0" sets a switch). Each is read once, on first
 * use. Every kernel family (quant.c, vec.c, pack.c) picks its table from
 * sk_cpu_level(); nothing else in the library queries the CPU.
 *
 * The sk_cpu_has_* checks are the hardware's (and the OS's: the register
 * state must be enabled), independent of the switches; tests use them to
 * run every instruction set the machine has. */
#ifndef SK_CPU_H
#define SK_CPU_H

/* Kernel sets, each a superset of the one before. */
typedef enum sk_isa {
    SK_ISA_SCALAR = 0,     /* the reference kernels */
    SK_ISA_AVX2 = 1,       /* AVX2 + FMA + F16C */
    SK_ISA_AVX512VNNI = 2, /* the above + AVX-512 F, BW, VL, DQ, VNNI */
} sk_isa;

/* Kernel sets the hardware supports. */
int sk_cpu_has_avx2(void);
int sk_cpu_has_avx512vnni(void);

/* Features no kernel uses yet, for system reports: AVX512_BF16,
 * AVX512_FP16, AMX-TILE and AMX-INT8 (the AMX ones need the OS to enable
 * tile state; a process must still request it before use). */
int sk_cpu_has_avx512bf16(void);
int sk_cpu_has_avx512fp16(void);
int sk_cpu_has_amx_tile(void);
int sk_cpu_has_amx_int8(void);

/* The kernel set in use: the best the CPU has, SK_ISA_SCALAR under
 * SINKLLM_SCALAR. Decided once, thread-safe. */
sk_isa sk_cpu_level(void);

/* Name of sk_cpu_level(): "avx512vnni", "avx2" or "scalar" (static). */
const char *sk_cpu_isa(void);

/* 1 if SINKLLM_NOPACK is set. */
int sk_cpu_nopack(void);

#endif
