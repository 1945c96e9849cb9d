/* tops_f64.c - the training ops in double precision: the twin that the
 * gradient checks difference (tests/test_train_ops.c). */
#include "tops.h"

#define R double
#define SFX f64
#define EXP exp
#include "tops_impl.h"
