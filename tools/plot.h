/* plot.h - a small plotting library that writes PNG files, for the CLI
 * tools: line charts (perplexity curves, latency over time) and attention
 * heat maps.
 *
 * Everything is drawn in software into an RGB buffer with an embedded
 * 5x8 bitmap font (drawn at 2x), then written with stb_image_write. A
 * chart owns copies of its series; nothing here prints or exits. Calls
 * that can fail return an sk_status and fill the optional sk_error. */
#ifndef SK_PLOT_H
#define SK_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Accepted image sizes of a chart, in pixels per side. */
#define SK_PLOT_MIN_SIZE 200
#define SK_PLOT_MAX_SIZE 8192

/* Pass as the gamma of sk_heatmap_write_png for a log10 colour scale. */
#define SK_HEATMAP_LOG 0.0

typedef struct sk_plot sk_plot;

/* A new empty line chart of width x height pixels (each side within
 * SK_PLOT_MIN_SIZE..SK_PLOT_MAX_SIZE). title, xlabel and ylabel may be NULL
 * or empty (then not drawn); they are copied, and drawn truncated with "..."
 * when too long for the image. Returns NULL on a bad size or out of memory.
 * Free with sk_plot_free. */
sk_plot *sk_plot_new(int width, int height, const char *title, const char *xlabel,
                     const char *ylabel);

/* Free the chart and its series copies. sk_plot_free(NULL) is a no-op. */
void sk_plot_free(sk_plot *p);

/* Logarithmic (log10) x or y axis when on is non-zero. On a log axis the
 * points with a value <= 0 are skipped like NaN, the range covers whole
 * decades and the decades are labelled. */
void sk_plot_set_logx(sk_plot *p, int on);
void sk_plot_set_logy(sk_plot *p, int on);

/* Fix the x or y axis range to [lo, hi] instead of fitting it to the data;
 * lines leaving the range are clipped. Returns SK_ERR_INVALID (range
 * unchanged) unless lo < hi and both are finite. A fixed range on a log
 * axis must be positive, or sk_plot_write_png fails with SK_ERR_INVALID. */
sk_status sk_plot_set_xrange(sk_plot *p, double lo, double hi, sk_error *err);
sk_status sk_plot_set_yrange(sk_plot *p, double lo, double hi, sk_error *err);

/* Add a line series of n points (x[i], y[i]), copying the data. x may be
 * NULL, meaning x[i] = i. A point with a NaN or infinite coordinate (or
 * <= 0 on a log axis) is skipped and leaves a gap in the line; a point
 * without a drawn neighbour is drawn as a small square. n may be 0 (the
 * series then only appears in the legend). label may be NULL ("series N").
 * Colours come from a fixed palette of 10, in the order series are added.
 * Returns SK_ERR_INVALID for n < 0 or a NULL y with n > 0, SK_ERR_NOMEM. */
sk_status sk_plot_add_series(sk_plot *p, const char *label, const double *x, const double *y,
                             int64_t n, sk_error *err);

/* Render the chart (white background, grid, axes with 1/2/5 x 10^k ticks,
 * labels, title, legend of the series) and write it as an RGB PNG at path,
 * replacing any file there. Returns SK_OK, SK_ERR_INVALID (a non-positive
 * fixed range on a log axis), SK_ERR_NOMEM or SK_ERR_IO (cannot write; a
 * partial file may remain). */
sk_status sk_plot_write_png(const sk_plot *p, const char *path, sk_error *err);

/* Write a heat-map figure to path: n_panels matrices side by side (wrapped
 * into a grid beyond 4 panels), each with its title (titles or titles[i]
 * may be NULL), an optional suptitle above all, and one colour bar.
 * mats[i] is row-major, (rows[i], cols[i]); every panel uses the same
 * colour scale: [0, 1] when all finite values lie in it (probabilities,
 * attention), else [min, max] of the finite values. gamma > 0 colours a
 * value at its position t in that scale by t^gamma (gamma < 1 lifts small
 * attention weights into view, 1 is linear); gamma == SK_HEATMAP_LOG (0)
 * colours by log10 over the top six decades below the largest value. Each
 * cell is an integer block of pixels, up to 512 pixels per matrix side;
 * matrices over 512 cells per side are shrunk by an integer factor, taking
 * the maximum of each block so that single strong cells stay visible. NaN
 * cells are grey. Returns SK_ERR_INVALID (n_panels outside 1..256, a NULL
 * matrix, a size outside 1..65536, a negative or NaN gamma, a figure over
 * 8192 pixels per side), SK_ERR_NOMEM or SK_ERR_IO. */
sk_status sk_heatmap_write_png(const char *path, int n_panels, const float *const *mats,
                               const int *rows, const int *cols, const char *const *titles,
                               const char *suptitle, double gamma, sk_error *err);

#endif
