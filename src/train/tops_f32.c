/* tops_f32.c - the training ops in single precision (the trainer's). */
#include "tops.h"

#define R float
#define SFX f32
#define EXP expf
#include "tops_impl.h"
