/* sysinfo.c - what the library runs on: version, the kernel instruction set
 * in use, the CPU's features and core count (sk_system_info_get in
 * include/sinkllm.h), all as the kernel layer (kernels/cpu.h) reports them. */
#include "sinkllm.h"
#include "kernels/cpu.h"
#include "kernels/threadpool.h"

void sk_system_info_get(sk_system_info *info) {
    if (!info) return;
    info->version = SINKLLM_VERSION;
    info->isa = sk_cpu_isa(); /* decides the kernel set on first use */
    info->n_cores = sk_cpu_count();
    info->cpu_avx2 = sk_cpu_has_avx2();
    info->cpu_avx512vnni = sk_cpu_has_avx512vnni();
    info->cpu_avx512bf16 = sk_cpu_has_avx512bf16();
    info->cpu_avx512fp16 = sk_cpu_has_avx512fp16();
    info->cpu_amx = sk_cpu_has_amx();
    info->nopack = sk_cpu_nopack();
    info->isa_note = sk_isa_note(sk_cpu_level());
    info->isa_error = sk_cpu_error();
    info->isa_best = sk_isa_name(sk_cpu_best());
}
