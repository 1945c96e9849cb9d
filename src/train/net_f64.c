/* net_f64.c - the training network in double precision: the twin of the gradient checks. */
#include "net.h"

#define R double
#define SFX f64
#include "net_impl.h"
