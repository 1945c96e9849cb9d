/* threadpool.h - a persistent pool of worker threads for data-parallel ops.
 *
 * sk_pool_run(pool, fn, arg) calls fn(arg, ith, nth) once for every ith in
 * [0, nth): the calling thread runs ith = 0, the workers the rest, and the
 * call returns when all are done. Workers spin on an atomic generation
 * counter for a short while after each job (a dispatch costs about a
 * microsecond in the token loop), then sleep on a condition variable so
 * that an idle pool burns no CPU. Nothing is allocated per job. */
#ifndef SK_THREADPOOL_H
#define SK_THREADPOOL_H

#include "status.h"

typedef struct sk_pool sk_pool;
typedef void (*sk_pool_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (the caller counts as one). */
sk_status sk_pool_new(int n_threads, sk_pool **out, sk_error *err);
void sk_pool_free(sk_pool *p);
int sk_pool_size(const sk_pool *p);
void sk_pool_run(sk_pool *p, sk_pool_fn fn, void *arg);

/* Split [0, n) into nth near-equal parts, rounded to multiples of `align`;
 * sets [*lo, *hi) for part ith. */
void sk_split_range(long n, long align, int ith, int nth, long *lo, long *hi);

/* Number of online CPUs (>= 1). */
int sk_cpu_count(void);

#endif
