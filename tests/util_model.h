/* util_model.h - helpers shared by tests that need the real model. */
#ifndef SK_TEST_UTIL_MODEL_H
#define SK_TEST_UTIL_MODEL_H

#include "sinkllm.h"

/* Path of the model under test: $SINKLLM_MODEL or the default. */
const char *test_model_path(void);

/* 1 when a missing model, data file or tool must fail the test instead of
 * skipping it: under `make test`, which exports SINKLLM_MODEL. */
int test_strict(void);

/* The model loaded once per process. Missing: in strict mode the process
 * exits 1 with a message naming the path; otherwise it prints "skipped:"
 * with the path and returns NULL (the caller then calls skip()). */
sk_model *test_model(void);

/* Path of a file under tests/ (golden files): $SINKLLM_TESTS_DIR or the
 * directory of this source tree. */
const char *test_data_path(const char *rel);

/* Whether `path` (a data file `what` needs) can be read. Missing: in strict
 * mode exits 1 with a message; otherwise prints "skipped:" and returns 0. */
int test_need_file(const char *what, const char *path);

/* A test that cannot run on this CPU: prints "skipped: <why>" (the caller
 * then calls skip(); tests/run-tests.sh counts it as skipped). */
void test_cpu_skip(const char *test, const char *why);

#endif
