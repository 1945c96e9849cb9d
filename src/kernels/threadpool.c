/* threadpool.c - persistent worker pool (see threadpool.h).
 *
 * Protocol: the caller stores fn/arg, then bumps `gen` (release). Each
 * worker waits for gen to change (spinning, then sleeping), runs its part,
 * and increments `n_done` (release). The caller runs part 0 and spins until
 * n_done == nth - 1 (acquire). */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define SK_PAUSE() _mm_pause()
#else
#define SK_PAUSE() ((void)0)
#endif

/* Spin about 50 microseconds (a pause is ~25 ns here) before sleeping or
 * yielding: long enough to bridge the gaps between the ops of one token,
 * short enough not to steal a core from a descheduled peer when the
 * machine is oversubscribed. */
#define SK_SPIN_ITERS 2000

typedef struct sk_worker {
    struct sk_pool *pool;
    int ith;
    pthread_t thread;
} sk_worker;

struct sk_pool {
    int nth;
    sk_worker *workers;        /* nth - 1 */
    _Atomic unsigned gen;      /* job generation */
    _Atomic int n_done;        /* workers finished with the current job */
    _Atomic int quit;
    _Atomic int n_sleeping;
    sk_pool_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void *worker_main(void *p) {
    sk_worker *w = p;
    sk_pool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->gen, memory_order_acquire)) == seen) {
            if (++spins < SK_SPIN_ITERS) {
                SK_PAUSE();
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->n_sleeping, 1);
            while (atomic_load(&pool->gen) == seen && !atomic_load(&pool->quit))
                pthread_cond_wait(&pool->cv, &pool->mu);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            pthread_mutex_unlock(&pool->mu);
            spins = 0;
        }
        seen = g;
        if (atomic_load(&pool->quit)) return NULL;
        pool->fn(pool->arg, w->ith, pool->nth);
        atomic_fetch_add_explicit(&pool->n_done, 1, memory_order_release);
    }
}

sk_status sk_pool_new(int n_threads, sk_pool **out, sk_error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return sk_error_set(err, SK_ERR_INVALID, "thread count %d out of range 1..1024", n_threads);
    sk_pool *p = calloc(1, sizeof *p);
    if (!p) return sk_error_set(err, SK_ERR_NOMEM, "out of memory (thread pool)");
    p->nth = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            sk_pool_free(p);
            return sk_error_set(err, SK_ERR_NOMEM, "out of memory (thread pool)");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        sk_worker *w = &p->workers[i - 1];
        w->pool = p;
        w->ith = i;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            p->nth = i; /* join only the ones that started */
            sk_pool_free(p);
            return sk_error_set(err, SK_ERR_NOMEM, "cannot start thread %d", i);
        }
    }
    *out = p;
    return SK_OK;
}

void sk_pool_free(sk_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->nth; i++) pthread_join(p->workers[i - 1].thread, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int sk_pool_size(const sk_pool *p) { return p->nth; }

void sk_pool_run(sk_pool *p, sk_pool_fn fn, void *arg) {
    if (p->nth == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
    /* seq_cst: the new gen must be visible before we read n_sleeping, or a
     * worker that just went to sleep could miss its wake-up */
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_seq_cst);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(arg, 0, p->nth);
    int spins = 0;
    while (atomic_load_explicit(&p->n_done, memory_order_acquire) != p->nth - 1) {
        if (++spins < SK_SPIN_ITERS) SK_PAUSE();
        else sched_yield(); /* a worker may be waiting for a core */
    }
}

void sk_split_range(long n, long align, int ith, int nth, long *lo, long *hi) {
    if (align < 1) align = 1;
    long nblk = (n + align - 1) / align;
    long per = nblk / nth, rem = nblk % nth;
    long b0 = ith * per + (ith < rem ? ith : rem);
    long b1 = b0 + per + (ith < rem ? 1 : 0);
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}

int sk_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}
