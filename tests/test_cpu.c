/* test_cpu.c - CPU features and the kernel-set choice (src/kernels/cpu.h).
 *
 *   - every feature sk_cpu_has_* reports agrees with the kernel's view in
 *     /proc/cpuinfo (where it exists): a feature is reported only if the
 *     kernel lists its flag, and AVX2/AVX-512 VNNI exactly when it does;
 *   - sk_cpu_level() is the best set the CPU has, and scalar under
 *     SINKLLM_SCALAR=1 (in a fresh process: the choice is made once);
 *   - sk_cpu_nopack() follows SINKLLM_NOPACK, "0" and "" meaning unset.
 * `test_cpu --print` prints the level's name and the nopack switch. */
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
    sk_isa want = sk_cpu_has_avx512vnni() ? SK_ISA_AVX512VNNI : sk_cpu_has_avx2() ? SK_ISA_AVX2 : SK_ISA_SCALAR;
    const char *env = getenv("SINKLLM_SCALAR");
    if (env && *env && strcmp(env, "0")) want = SK_ISA_SCALAR;
    assert_int_equal(sk_cpu_level(), want);
    const char *names[] = {"scalar", "avx2", "avx512vnni"};
    assert_string_equal(sk_cpu_isa(), names[want]);
}

/* output of `test_cpu --print` run with the environment prefix env */
static void run_print(const char *env, char *out, size_t n) {
    char exe[4096], cmd[4300];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) skip();
    exe[len] = 0;
    snprintf(cmd, sizeof cmd, "env -u SINKLLM_SCALAR -u SINKLLM_NOPACK %s '%s' --print", env, exe);
    FILE *p = popen(cmd, "r");
    if (!p) skip();
    out[0] = 0;
    char *ok = fgets(out, (int)n, p);
    pclose(p);
    assert_non_null(ok);
}

static void test_switches(void **state) {
    (void)state;
    char buf[64], want[64];
    run_print("SINKLLM_SCALAR=1", buf, sizeof buf);
    assert_string_equal(buf, "scalar 0\n");
    run_print("SINKLLM_SCALAR=0 SINKLLM_NOPACK=1", buf, sizeof buf);
    snprintf(want, sizeof want, "%s 1\n",
             sk_cpu_has_avx512vnni() ? "avx512vnni" : sk_cpu_has_avx2() ? "avx2" : "scalar");
    assert_string_equal(buf, want);
    run_print("SINKLLM_NOPACK=0", buf, sizeof buf);
    want[strlen(want) - 2] = '0';
    assert_string_equal(buf, want);
    run_print("SINKLLM_NOPACK=", buf, sizeof buf);
    assert_string_equal(buf, want);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--print")) {
        printf("%s %d\n", sk_cpu_isa(), sk_cpu_nopack());
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_level),
        cmocka_unit_test(test_switches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
