/* test_cpu.c - CPU features and the kernel-set choice (src/kernels/cpu.h).
 *
 *   - every feature sk_cpu_has_* reports agrees with the kernel's view in
 *     /proc/cpuinfo (where it exists): a feature is reported only if the
 *     kernel lists its flag, and AVX2/AVX-512 VNNI exactly when it does;
 *   - the tiers: names round-trip, sk_cpu_best() is the best the CPU has
 *     (amx only with the tile data granted), sk_cpu_level() is that or
 *     SINKLLM_ISA's;
 *   - in fresh processes (the choice is made once): SINKLLM_ISA=T selects T
 *     for every tier T the CPU has; a tier above the best and an unknown
 *     name are errors that name the cause (and leave the best tier);
 *     SINKLLM_SCALAR=1 is SINKLLM_ISA=scalar, and disagreeing with
 *     SINKLLM_ISA is an error;
 *   - sk_cpu_nopack() follows SINKLLM_NOPACK, "0" and "" meaning unset.
 * `test_cpu --print` prints the level's name, the nopack switch and the
 * error ("-" for none). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernels/cpu.h"

/* 1 if flag is a word of the first "flags" line of /proc/cpuinfo, 0 if
 * not, -1 if there is no such file. */
static int proc_flag(const char *flag) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return -1;
    static char line[1 << 14];
    int found = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            found = 0;
            for (char *w = strtok(strchr(line, ':') + 1, " \n"); w; w = strtok(NULL, " \n"))
                if (!strcmp(w, flag)) found = 1;
            break;
        }
    fclose(f);
    return found;
}

static void test_features(void **state) {
    (void)state;
    if (proc_flag("fpu") != 1) skip();
    int avx2 = proc_flag("avx2") && proc_flag("fma") && proc_flag("f16c");
    int vnni = avx2 && proc_flag("avx512f") && proc_flag("avx512bw") && proc_flag("avx512vl") &&
               proc_flag("avx512dq") && proc_flag("avx512_vnni");
    assert_int_equal(sk_cpu_has_avx2(), avx2);
    assert_int_equal(sk_cpu_has_avx512vnni(), vnni);
    /* report-only features: never claimed without the kernel's flag */
    if (sk_cpu_has_avx512bf16()) assert_int_equal(proc_flag("avx512_bf16"), 1);
    if (sk_cpu_has_avx512fp16()) assert_int_equal(proc_flag("avx512_fp16"), 1);
    if (sk_cpu_has_amx_tile()) assert_int_equal(proc_flag("amx_tile"), 1);
    if (sk_cpu_has_amx_int8()) assert_int_equal(proc_flag("amx_int8"), 1);
    print_message("  avx2 %d avx512vnni %d avx512_bf16 %d avx512_fp16 %d amx_tile %d amx_int8 %d\n",
                  sk_cpu_has_avx2(), sk_cpu_has_avx512vnni(), sk_cpu_has_avx512bf16(),
                  sk_cpu_has_avx512fp16(), sk_cpu_has_amx_tile(), sk_cpu_has_amx_int8());
}

static void test_level(void **state) {
    (void)state;
    sk_isa best = sk_cpu_has_amx() ? SK_ISA_AMX : sk_cpu_has_avx512vnni() ? SK_ISA_AVX512VNNI
                  : sk_cpu_has_avx2() ? SK_ISA_AVX2 : SK_ISA_SCALAR;
    assert_int_equal(sk_cpu_best(), best);
    if (sk_cpu_has_amx()) assert_true(sk_cpu_has_amx_tile() && sk_cpu_has_amx_int8() && sk_cpu_has_avx512vnni());
    for (int t = 0; t < SK_ISA_COUNT; t++) assert_int_equal(sk_cpu_has_isa((sk_isa)t), t <= (int)best);
    sk_isa want = best; /* make test also runs this binary under SINKLLM_ISA */
    const char *env = getenv("SINKLLM_SCALAR"), *isa = getenv("SINKLLM_ISA");
    if (isa && *isa && sk_isa_from_name(isa) >= 0 && sk_isa_from_name(isa) <= (int)best)
        want = (sk_isa)sk_isa_from_name(isa);
    if (env && *env && strcmp(env, "0")) want = SK_ISA_SCALAR;
    assert_int_equal(sk_cpu_level(), want);
    assert_string_equal(sk_cpu_isa(), sk_isa_name(want));
    print_message("  tier %s (best %s)\n", sk_cpu_isa(), sk_isa_name(best));
}

static void test_names(void **state) {
    (void)state;
    const char *names[] = {"scalar", "avx2", "avx512", "amx"};
    for (int t = 0; t < SK_ISA_COUNT; t++) {
        assert_string_equal(sk_isa_name((sk_isa)t), names[t]);
        assert_int_equal(sk_isa_from_name(names[t]), t);
        /* amx's note: it runs the avx512 kernels; avx512's where the CPU
         * runs 512 bits whole: its 512-bit kernels */
        assert_int_equal(*sk_isa_note((sk_isa)t) != 0,
                         t == SK_ISA_AMX || (t == SK_ISA_AVX512VNNI && sk_cpu_wide512()));
    }
    assert_int_equal(sk_isa_from_name("avx512vnni"), -1);
    assert_int_equal(sk_isa_from_name("AVX2"), -1);
    assert_int_equal(sk_isa_from_name(""), -1);
    assert_int_equal(sk_isa_from_name(NULL), -1);
    assert_null(sk_isa_name(SK_ISA_COUNT));
}

/* output of `test_cpu --print` run with the environment prefix env */
static void run_print(const char *env, char *out, size_t n) {
    char exe[4096], cmd[4300];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) skip();
    exe[len] = 0;
    snprintf(cmd, sizeof cmd, "env -u SINKLLM_SCALAR -u SINKLLM_NOPACK -u SINKLLM_ISA %s '%s' --print", env,
             exe);
    FILE *p = popen(cmd, "r");
    if (!p) skip();
    out[0] = 0;
    char *ok = fgets(out, (int)n, p);
    pclose(p);
    assert_non_null(ok);
}

static void test_switches(void **state) {
    (void)state;
    char buf[256], want[256], env[64];
    const char *best = sk_isa_name(sk_cpu_best());
    run_print("SINKLLM_SCALAR=1", buf, sizeof buf);
    assert_string_equal(buf, "scalar 0 -\n");
    run_print("SINKLLM_SCALAR=1 SINKLLM_ISA=scalar", buf, sizeof buf);
    assert_string_equal(buf, "scalar 0 -\n");
    run_print("SINKLLM_SCALAR=0 SINKLLM_NOPACK=1", buf, sizeof buf);
    snprintf(want, sizeof want, "%s 1 -\n", best);
    assert_string_equal(buf, want);
    snprintf(want, sizeof want, "%s 0 -\n", best);
    run_print("SINKLLM_NOPACK=0", buf, sizeof buf);
    assert_string_equal(buf, want);
    run_print("SINKLLM_NOPACK=", buf, sizeof buf);
    assert_string_equal(buf, want);
    run_print("SINKLLM_ISA=", buf, sizeof buf);
    assert_string_equal(buf, want);
    /* every tier: selected where the CPU has it, an error naming the best otherwise */
    for (int t = 0; t < SK_ISA_COUNT; t++) {
        const char *name = sk_isa_name((sk_isa)t);
        snprintf(env, sizeof env, "SINKLLM_ISA=%s", name);
        run_print(env, buf, sizeof buf);
        if (sk_cpu_has_isa((sk_isa)t))
            snprintf(want, sizeof want, "%s 0 -\n", name);
        else
            snprintf(want, sizeof want, "%s 0 SINKLLM_ISA=%s: this CPU's best tier is %s\n", best, name, best);
        assert_string_equal(buf, want);
        print_message("  SINKLLM_ISA=%s: %s", name, buf);
    }
    run_print("SINKLLM_ISA=avx512vnni", buf, sizeof buf);
    snprintf(want, sizeof want, "%s 0 SINKLLM_ISA=avx512vnni: unknown tier (one of amx, avx512, avx2, scalar)\n",
             best);
    assert_string_equal(buf, want);
    run_print("SINKLLM_SCALAR=1 SINKLLM_ISA=avx2", buf, sizeof buf);
    assert_non_null(strstr(buf, "disagree"));
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--print")) {
        printf("%s %d %s\n", sk_cpu_isa(), sk_cpu_nopack(), sk_cpu_error() ? sk_cpu_error() : "-");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_level),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_switches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
