/* util_model.h - helpers shared by tests that need the real model. */
#ifndef SK_TEST_UTIL_MODEL_H
#define SK_TEST_UTIL_MODEL_H

#include "sinkllm.h"

/* Path of the model under test: $SINKLLM_MODEL or the default. */
const char *test_model_path(void);

/* The model loaded once per process (NULL if the file is missing). */
sk_model *test_model(void);

/* Path of a file under tests/ (golden files): $SINKLLM_TESTS_DIR or the
 * directory of this source tree. */
const char *test_data_path(const char *rel);

#endif
