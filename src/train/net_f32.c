/* net_f32.c - the training network in single precision (the trainer's). */
#include "net.h"

#define R float
#define SFX f32
#include "net_impl.h"
