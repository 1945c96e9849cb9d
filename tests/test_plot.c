/* test_plot.c - the PNG plotting library (tools/plot.c): tick arithmetic,
 * the font table, charts and heat maps written to a temporary folder and
 * read back with an independent PNG decoder (stb_image), checked at the
 * byte level (signature, IHDR) and the pixel level (series colours where
 * the data says, gaps at NaN, nothing drawn outside the plot area), plus
 * degenerate and invalid input.
 *
 * tools/ is not in libsinkllm.a, so the implementation is included here;
 * that also lets the tests use its internal layout to find data pixels.
 * With SK_PLOT_DEMO=DIR set, a sample chart and heat map are also written to
 * DIR/plot_demo.png and DIR/heat_demo.png for a person to look at. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "../tools/plot.c"

/* The independent decoder that reads the files back (header-only). */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#include <stb/stb_image.h>

static char g_dir[64];

static const char *tmp_path(const char *name) {
    static char buf[64 + 1 + 256 + 1]; /* dir, /, a d_name */
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}

/* A decoded PNG: (h, w, 3) RGB. */
typedef struct t_img {
    int w, h;
    unsigned char *px;
} t_img;

static uint32_t be32(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Check the PNG signature and the IHDR chunk of the file by hand, then
 * decode it and check the decoder agrees on the size. */
static t_img load_png(const char *path, int want_w, int want_h) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char head[33];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(head, 1, sizeof head, f), sizeof head);
    fclose(f);
    assert_memory_equal(head, sig, 8);
    assert_int_equal(be32(head + 8), 13); /* IHDR length */
    assert_memory_equal(head + 12, "IHDR", 4);
    uint32_t w = be32(head + 16), h = be32(head + 20);
    assert_int_equal(head[24], 8); /* bit depth */
    assert_int_equal(head[25], 2); /* colour type: RGB */
    if (want_w > 0) assert_int_equal(w, want_w);
    if (want_h > 0) assert_int_equal(h, want_h);
    t_img im;
    int n;
    im.px = stbi_load(path, &im.w, &im.h, &n, 3);
    assert_non_null(im.px);
    assert_int_equal(im.w, (int)w);
    assert_int_equal(im.h, (int)h);
    return im;
}

static int t_is(const t_img *im, int x, int y, rgb c) {
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return 0;
    const unsigned char *p = im->px + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
    return p[0] == c.r && p[1] == c.g && p[2] == c.b;
}

/* Pixels of colour c in [x0, x1) x [y0, y1). */
static long t_count(const t_img *im, rgb c, int x0, int y0, int x1, int y1) {
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) n += t_is(im, x, y, c);
    return n;
}

/* Whether colour c is within r pixels of (x, y). */
static int t_near(const t_img *im, double x, double y, int r, rgb c) {
    int cx = (int)lround(x), cy = (int)lround(y);
    return t_count(im, c, cx - r, cy - r, cx + r + 1, cy + r + 1) > 0;
}

/* Pixels of colour c outside the plot area (with a 1-pixel frame). */
static long t_outside(const t_img *im, const layout *L, rgb c) {
    long n = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            int in = x >= L->px0 && x < L->px0 + L->pw && y >= L->py0 && y < L->py0 + L->ph;
            if (!in) n += t_is(im, x, y, c);
        }
    return n;
}

/* ---- internals ---------------------------------------------------------- */

static void test_font_table(void **state) {
    (void)state;
    for (int i = 0; i < 95; i++) {
        int on = 0;
        for (int r = 0; r < FONT_H; r++) {
            assert_int_equal(FONT[i][r] & ~0x1F, 0); /* 5 columns only */
            on += FONT[i][r] != 0;
        }
        if (i == 0) assert_int_equal(on, 0); /* space */
        else assert_true(on > 0);
        for (int j = 0; j < i; j++) assert_true(memcmp(FONT[i], FONT[j], FONT_H) != 0);
    }
    /* descenders only on the letters that have one */
    const char *desc = "gjpqy,;";
    for (int ch = 33; ch < 127; ch++)
        assert_int_equal(FONT[ch - 32][7] != 0, strchr(desc, ch) != NULL);
}

static void test_format(void **state) {
    (void)state;
    char b[LABEL_LEN];
    assert_true(fabs(nice_step(1, 5) - 0.2) < 1e-12);
    assert_true(fabs(nice_step(7, 5) - 2) < 1e-12);
    assert_true(fabs(nice_step(0.03, 5) - 0.01) < 1e-15);
    assert_true(fabs(nice_step(4e9, 5) - 1e9) < 1);
    format_decade(b, sizeof b, -3);
    assert_string_equal(b, "0.001");
    format_decade(b, sizeof b, 4);
    assert_string_equal(b, "10000");
    format_decade(b, sizeof b, 5);
    assert_string_equal(b, "1e5");
    format_decade(b, sizeof b, -12);
    assert_string_equal(b, "1e-12");
    format_linear(b, sizeof b, 0.4, 0.2, 1);
    assert_string_equal(b, "0.4");
    format_linear(b, sizeof b, 2000, 1000, 10000);
    assert_string_equal(b, "2000");
    format_linear(b, sizeof b, 2.5e7, 5e6, 3e7);
    assert_string_equal(b, "2.5e7");
    format_linear(b, sizeof b, -1e-5, 5e-6, 2e-5);
    assert_string_equal(b, "-1.0e-5");
    format_value(b, sizeof b, 0.05);
    assert_string_equal(b, "0.05");
}

static void test_axis_fit(void **state) {
    (void)state;
    axis a;
    axis_fit_linear(&a, 0, 0, 0, 1, 0.03, 0.97, 5);
    assert_true(a.lo == 0 && fabs(a.hi - 1) < 1e-12);
    assert_int_equal(a.n_major, 6);
    assert_string_equal(a.label[0], "0");
    assert_string_equal(a.label[1], "0.2");
    assert_string_equal(a.label[5], "1.0");
    /* one value: a range around it; zero: [-1, 1] */
    axis_fit_linear(&a, 0, 0, 0, 1, 7, 7, 5);
    assert_true(a.lo < 7 && a.hi > 7 && a.n_major >= 2);
    axis_fit_linear(&a, 0, 0, 0, 1, 0, 0, 5);
    assert_true(a.lo <= -1 && a.hi >= 1);
    /* no data */
    axis_fit_linear(&a, 0, 0, 0, 0, NAN, NAN, 5);
    assert_true(a.lo == 0 && a.hi == 1);
    /* the widest range doubles hold: finite span, a handful of ticks */
    axis_fit_linear(&a, 0, 0, 0, 1, -1e307, 1e307, 5);
    assert_true(isfinite(a.hi - a.lo) && a.n_major >= 2 && a.n_major <= 12);
    /* a range under double precision */
    axis_fit_linear(&a, 1, 1e15, 1e15 + 0.01, 0, 0, 0, 5);
    assert_true(a.lo < a.hi && a.n_major >= 1 && a.n_major < MAX_TICKS);
    /* log: whole decades, every one labelled */
    axis_fit_log(&a, 0, 0, 0, 1, -2.5, 1.3, 6);
    assert_true(a.lo == -3 && a.hi == 2);
    assert_int_equal(a.n_major, 6);
    assert_string_equal(a.label[0], "0.001");
    assert_string_equal(a.label[3], "1");
    assert_string_equal(a.label[5], "100");
    assert_true(a.n_minor > 0);
    /* all values one power of ten: a decade either side */
    axis_fit_log(&a, 0, 0, 0, 1, 1, 1, 6);
    assert_true(a.lo == 0 && a.hi == 2 && a.n_major == 3);
    /* log over 600 decades: fewer labels, no minor ticks */
    axis_fit_log(&a, 0, 0, 0, 1, -300, 300, 6);
    assert_true(a.n_major >= 2 && a.n_major <= 8 && a.n_minor == 0);
    /* a fixed range inside one decade still gets labels */
    axis_fit_log(&a, 1, log10(2), log10(8), 0, 0, 0, 6);
    assert_true(a.n_major >= 2);
    assert_string_equal(a.label[0], "2");
}

static void test_text_clip(void **state) {
    (void)state;
    canvas c;
    assert_int_equal(canvas_init(&c, 40, 30, NULL), SK_OK);
    size_t keep;
    assert_int_equal(text_fit("hello", 1000, &keep), 5);
    assert_int_equal(keep, 5);
    assert_int_equal(text_fit("hello world", 5 * CHAR_W, &keep), 5);
    assert_int_equal(keep, 2); /* "he..." */
    /* drawing far outside or across the edges stays inside the buffer */
    draw_text(&c, -50, -5, "clipped text", 1 << 20, C_TEXT, 0);
    draw_text(&c, 30, 100, "vertical", 1 << 20, C_TEXT, 1);
    draw_line(&c, -1e9, -1e9, 1e9, 1e9, 2, C_TEXT);
    draw_line(&c, 5, 5, 5, 5, 2, C_TEXT);
    fill_rect(&c, INT32_MAX - 1, INT32_MIN + 1, INT32_MAX, INT32_MAX, C_TEXT);
    long dark = 0;
    for (int i = 0; i < 40 * 30 * 3; i++) dark += c.px[i] == C_TEXT.r;
    assert_true(dark > 0);
    free(c.px);
}

/* ---- charts ------------------------------------------------------------- */

static void test_three_series(void **state) {
    (void)state;
    enum { N = 200 };
    double x[N], a[N], b[N], d[N];
    for (int i = 0; i < N; i++) {
        x[i] = i * 10;
        a[i] = 10 + 40 * exp(-i / 30.0);
        b[i] = 12 + 30 * exp(-i / 50.0);
        d[i] = 40 + 3 * sin(i * 0.1);
    }
    for (int logy = 0; logy < 2; logy++) {
        sk_plot *p = sk_plot_new(800, 500, "three series", "position", "perplexity");
        assert_non_null(p);
        sk_plot_set_logy(p, logy);
        assert_int_equal(sk_plot_add_series(p, "dense", x, a, N, NULL), SK_OK);
        assert_int_equal(sk_plot_add_series(p, "window", x, b, N, NULL), SK_OK);
        assert_int_equal(sk_plot_add_series(p, "sinks", x, d, N, NULL), SK_OK);
        const char *path = tmp_path(logy ? "three_log.png" : "three.png");
        sk_error e = {0};
        assert_int_equal(sk_plot_write_png(p, path, &e), SK_OK);
        t_img im = load_png(path, 800, 500);
        layout L;
        assert_int_equal(plot_layout(p, &L, NULL), SK_OK);
        if (logy) assert_true(L.ay.log && L.ay.lo == 1 && L.ay.hi == 2);
        /* each series' colour where its data points are, none outside */
        const double *ys[3] = {a, b, d};
        for (int s = 0; s < 3; s++)
            for (int i = 40; i < N - 40; i += 37) {
                double qx = map_x(&L, x[i]), qy = map_y(&L, to_unit(logy, ys[s][i]));
                assert_true(t_near(&im, qx, qy, 1, PALETTE[s]));
            }
        for (int s = 0; s < 3; s++) assert_int_equal(t_outside(&im, &L, PALETTE[s]), 0);
        /* title and tick labels drew text in the margins */
        assert_true(t_count(&im, C_TEXT, 0, 0, im.w, L.py0) > 50);
        assert_true(t_count(&im, C_TEXT, 0, L.py0 + L.ph + 2, im.w, im.h) > 50);
        /* the y label reads upwards: a column of text left of the tick labels */
        int ymin = im.h, ymax = -1, xmax = -1;
        for (int y = 0; y < im.h; y++)
            for (int xx = 0; xx < L.ytick_right - axis_label_width(&L.ay) - 4; xx++)
                if (t_is(&im, xx, y, C_TEXT)) {
                    ymin = y < ymin ? y : ymin;
                    ymax = y > ymax ? y : ymax;
                    xmax = xx > xmax ? xx : xmax;
                }
        assert_true(ymax - ymin >= text_width("perplexity", 1 << 20) - 2);
        assert_true(xmax < L.ylabel_x + TEXT_H);
        stbi_image_free(im.px);
        sk_plot_free(p);
        remove(path);
    }
}

static void test_nan_gap_and_lone_point(void **state) {
    (void)state;
    enum { N = 100 };
    double y[N];
    for (int i = 0; i < N; i++) y[i] = i >= 40 && i < 60 ? NAN : 0.5;
    y[80] = INFINITY; /* isolates point 81? no: 79 and 81 stay joined to their sides */
    double one_x = 50, one_y = 0.25;
    sk_plot *p = sk_plot_new(600, 400, NULL, NULL, NULL);
    assert_non_null(p);
    assert_int_equal(sk_plot_set_yrange(p, 0, 1, NULL), SK_OK);
    assert_int_equal(sk_plot_add_series(p, "gappy", NULL, y, N, NULL), SK_OK);
    assert_int_equal(sk_plot_add_series(p, "one", &one_x, &one_y, 1, NULL), SK_OK);
    const char *path = tmp_path("gap.png");
    assert_int_equal(sk_plot_write_png(p, path, NULL), SK_OK);
    t_img im = load_png(path, 600, 400);
    layout L;
    assert_int_equal(plot_layout(p, &L, NULL), SK_OK);
    assert_true(t_near(&im, map_x(&L, 20), map_y(&L, 0.5), 1, PALETTE[0]));
    assert_true(t_near(&im, map_x(&L, 70), map_y(&L, 0.5), 1, PALETTE[0]));
    assert_false(t_near(&im, map_x(&L, 50), map_y(&L, 0.5), 4, PALETTE[0]));
    assert_false(t_near(&im, map_x(&L, 80), map_y(&L, 0.5), 0, PALETTE[0]));
    /* the single point is a visible square */
    assert_true(t_count(&im, PALETTE[1], (int)map_x(&L, 50) - 4, (int)map_y(&L, 0.25) - 4,
                        (int)map_x(&L, 50) + 5, (int)map_y(&L, 0.25) + 5) >= 16);
    stbi_image_free(im.px);
    sk_plot_free(p);
    remove(path);
}

static void test_degenerate_charts(void **state) {
    (void)state;
    static char long_label[10000];
    memset(long_label, 'W', sizeof long_label - 1);
    double nan3[3] = {NAN, NAN, NAN}, eq[5] = {3, 3, 3, 3, 3}, one = 42;
    double huge[6] = {-DBL_MAX, -1e308, 0, 1e-320, 1e308, DBL_MAX};
    double logbad[5] = {-1, 0, 1e-300, 1e300, 5};
    double xs[6] = {1, 2, 3, 4, 5, 6};
    for (int k = 0; k < 9; k++) {
        sk_plot *p = sk_plot_new(k == 8 ? SK_PLOT_MIN_SIZE : 640, k == 8 ? SK_PLOT_MIN_SIZE : 400,
                                 long_label, long_label, long_label);
        assert_non_null(p);
        switch (k) {
        case 0: break;                                                           /* no series */
        case 1: assert_int_equal(sk_plot_add_series(p, "", NULL, NULL, 0, NULL), SK_OK); break;
        case 2: assert_int_equal(sk_plot_add_series(p, NULL, &one, &one, 1, NULL), SK_OK); break;
        case 3: assert_int_equal(sk_plot_add_series(p, "nan", NULL, nan3, 3, NULL), SK_OK); break;
        case 4: assert_int_equal(sk_plot_add_series(p, long_label, NULL, eq, 5, NULL), SK_OK); break;
        case 5:
            assert_int_equal(sk_plot_add_series(p, "huge", huge, huge, 6, NULL), SK_OK);
            break;
        case 6:
            sk_plot_set_logx(p, 1);
            sk_plot_set_logy(p, 1);
            assert_int_equal(sk_plot_add_series(p, "log", xs, logbad, 5, NULL), SK_OK);
            assert_int_equal(sk_plot_add_series(p, "log", logbad, xs, 5, NULL), SK_OK);
            break;
        case 7: /* 40 series: the legend ends in "+N more" */
            for (int s = 0; s < 40; s++)
                assert_int_equal(sk_plot_add_series(p, long_label, NULL, xs, 6, NULL), SK_OK);
            break;
        case 8: /* smallest image, fixed ranges away from the data */
            assert_int_equal(sk_plot_set_xrange(p, 100, 100.5, NULL), SK_OK);
            assert_int_equal(sk_plot_set_yrange(p, -1e-300, 1e-300, NULL), SK_OK);
            assert_int_equal(sk_plot_add_series(p, "out", huge, xs, 6, NULL), SK_OK);
            break;
        }
        char name[32];
        snprintf(name, sizeof name, "degenerate%d.png", k);
        sk_error e = {0};
        assert_int_equal(sk_plot_write_png(p, tmp_path(name), &e), SK_OK);
        t_img im = load_png(tmp_path(name), k == 8 ? SK_PLOT_MIN_SIZE : 640,
                            k == 8 ? SK_PLOT_MIN_SIZE : 400);
        layout L;
        assert_int_equal(plot_layout(p, &L, NULL), SK_OK);
        assert_true(L.pw > 0 && L.ph > 0 && L.px0 + L.pw <= im.w && L.py0 + L.ph <= im.h);
        for (int s = 0; s < 10; s++) assert_int_equal(t_outside(&im, &L, PALETTE[s]), 0);
        if (k == 4) /* all-equal values: a flat line through the middle */
            assert_true(t_near(&im, map_x(&L, 2), map_y(&L, 3), 1, PALETTE[0]));
        if (k == 2) assert_true(t_near(&im, map_x(&L, 42), map_y(&L, 42), 1, PALETTE[0]));
        stbi_image_free(im.px);
        sk_plot_free(p);
        remove(tmp_path(name));
    }
}

static void test_bad_chart_input(void **state) {
    (void)state;
    sk_error e = {0};
    double v[2] = {1, 2};
    assert_null(sk_plot_new(SK_PLOT_MIN_SIZE - 1, 300, NULL, NULL, NULL));
    assert_null(sk_plot_new(300, SK_PLOT_MAX_SIZE + 1, NULL, NULL, NULL));
    assert_null(sk_plot_new(-5, -5, NULL, NULL, NULL));
    sk_plot_free(NULL);
    sk_plot_set_logy(NULL, 1);
    assert_int_equal(sk_plot_add_series(NULL, "x", NULL, v, 2, &e), SK_ERR_INVALID);
    assert_int_equal(sk_plot_write_png(NULL, tmp_path("x.png"), &e), SK_ERR_INVALID);
    sk_plot *p = sk_plot_new(300, 300, "t", NULL, NULL);
    assert_non_null(p);
    assert_int_equal(sk_plot_add_series(p, "neg", NULL, v, -1, &e), SK_ERR_INVALID);
    assert_int_equal(e.code, SK_ERR_INVALID);
    assert_true(strlen(e.msg) > 0);
    assert_int_equal(sk_plot_add_series(p, "null y", v, NULL, 2, &e), SK_ERR_INVALID);
    assert_int_equal(sk_plot_add_series(p, "huge n", NULL, v, INT64_MAX, &e), SK_ERR_NOMEM);
    assert_int_equal(p->n_series, 0);
    assert_int_equal(sk_plot_set_yrange(p, 1, 1, &e), SK_ERR_INVALID);
    assert_int_equal(sk_plot_set_yrange(p, 2, 1, &e), SK_ERR_INVALID);
    assert_int_equal(sk_plot_set_xrange(p, NAN, 1, &e), SK_ERR_INVALID);
    assert_int_equal(sk_plot_set_xrange(p, 0, INFINITY, &e), SK_ERR_INVALID);
    assert_int_equal(p->fixx + p->fixy, 0);
    assert_int_equal(sk_plot_write_png(p, NULL, &e), SK_ERR_INVALID);
    assert_int_equal(sk_plot_write_png(p, "/nonexistent-dir/x/y.png", &e), SK_ERR_IO);
    assert_non_null(strstr(e.msg, "/nonexistent-dir/x/y.png"));
    if (access("/dev/full", W_OK) == 0) { /* every write fails: ENOSPC */
        assert_int_equal(sk_plot_write_png(p, "/dev/full", &e), SK_ERR_IO);
        assert_non_null(strstr(e.msg, "/dev/full"));
    }
    /* a log axis with a non-positive fixed range */
    assert_int_equal(sk_plot_set_yrange(p, -1, 1, &e), SK_OK);
    sk_plot_set_logy(p, 1);
    assert_int_equal(sk_plot_write_png(p, tmp_path("x.png"), &e), SK_ERR_INVALID);
    sk_plot_set_logy(p, 0);
    assert_int_equal(sk_plot_write_png(p, tmp_path("x.png"), &e), SK_OK);
    remove(tmp_path("x.png"));
    sk_plot_free(p);
}

/* ---- heat maps ---------------------------------------------------------- */

static void test_heatmap(void **state) {
    (void)state;
    /* three panels of different sizes; one hot cell per panel, one NaN */
    int rows[3] = {64, 100, 8}, cols[3] = {64, 30, 300};
    float *m[3];
    for (int i = 0; i < 3; i++) {
        m[i] = calloc((size_t)rows[i] * (size_t)cols[i], sizeof(float));
        assert_non_null(m[i]);
        for (int j = 0; j < rows[i] * cols[i]; j++) m[i][j] = 0.001f * (float)(j % 7);
    }
    m[0][0] = 1.0f;
    m[1][5] = NAN;
    const char *titles[3] = {"layer 0", NULL, "a panel title far too long for its panel"};
    const float *const mats[3] = {m[0], m[1], m[2]};
    const double gammas[3] = {1.0, 0.3, SK_HEATMAP_LOG};
    for (int g = 0; g < 3; g++) {
        const char *path = tmp_path("heat.png");
        sk_error e = {0};
        assert_int_equal(sk_heatmap_write_png(path, 3, mats, rows, cols, titles, "attention",
                                              gammas[g], &e),
                         SK_OK);
        t_img im = load_png(path, 0, 0);
        rgb top = RAMP[5].c, bottom = RAMP[0].c;
        /* the hot cell is the top colour (one pixel: 300 columns give 1
         * pixel per cell), as is the top row of the colour bar */
        assert_true(t_count(&im, top, 0, 0, im.w, im.h) >= 1 + HM_BAR_W);
        assert_true(t_count(&im, bottom, 0, 0, im.w, im.h) > 100);
        assert_true(t_count(&im, C_NAN, 0, 0, im.w, im.h) >= 1);
        /* a small value v = 0.003 sits at v on the linear scale, v^gamma
         * with gamma 0.3, and log10(v / lo) / log10(1 / lo) on the log
         * scale, whose range is [smallest positive, largest] = [0.001, 1] */
        double v = m[0][3];
        double lo = m[0][1];
        double t = g == 0 ? v : g == 1 ? pow(v, 0.3) : (log10(v) - log10(lo)) / (0 - log10(lo));
        rgb small = colormap(t);
        assert_true(t_count(&im, small, 0, 0, im.w, im.h) >= 100);
        if (g > 0) assert_true(t > 0.15);
        stbi_image_free(im.px);
        remove(path);
    }
    for (int i = 0; i < 3; i++) free(m[i]);
}

static void test_heatmap_degenerate(void **state) {
    (void)state;
    sk_error e = {0};
    const char *path = tmp_path("heat_d.png");
    /* 1x1; all equal; all NaN; negative and huge values */
    float one = 0.5f, eq[16], nan4[4] = {NAN, NAN, INFINITY, -INFINITY}, wild[4] = {-3e38f, 0, 1, 3e38f};
    for (int i = 0; i < 16; i++) eq[i] = 7;
    const float *cases[4] = {&one, eq, nan4, wild};
    int rs[4] = {1, 4, 2, 2}, cs[4] = {1, 4, 2, 2};
    for (int k = 0; k < 4; k++)
        for (int g = 0; g < 2; g++) {
            const float *mats[1] = {cases[k]};
            assert_int_equal(sk_heatmap_write_png(path, 1, mats, &rs[k], &cs[k], NULL, NULL,
                                                  g ? SK_HEATMAP_LOG : 0.5, &e),
                             SK_OK);
            t_img im = load_png(path, 0, 0);
            if (k == 2) assert_true(t_count(&im, C_NAN, 0, 0, im.w, im.h) >= 4 * 32 * 32);
            stbi_image_free(im.px);
        }
    /* 1024x1024 shrinks 2x by block maximum: the single hot cell survives */
    int big = 1024;
    float *m = calloc((size_t)big * (size_t)big, sizeof(float));
    assert_non_null(m);
    m[(size_t)big * big - 1] = 1;
    const float *mats1[1] = {m};
    assert_int_equal(sk_heatmap_write_png(path, 1, mats1, &big, &big, NULL, NULL, 1, &e), SK_OK);
    t_img im = load_png(path, 0, 0);
    assert_true(im.w < 1024);
    rgb top = RAMP[5].c;
    assert_true(t_count(&im, top, 0, 0, im.w, im.h) >= 1 + 18);
    stbi_image_free(im.px);
    /* 256 panels of 256x256, or of 65536x65536, fit by shrinking the cells
     * (geometry only: rendering them would take gigabytes) */
    static const float *many[HM_MAX_PANELS];
    static int rr[HM_MAX_PANELS], cc[HM_MAX_PANELS];
    hm_panel pn[HM_MAX_PANELS];
    hm_geom g;
    for (int side = 256; side <= HM_MAX_DIM; side *= 256) {
        for (int i = 0; i < HM_MAX_PANELS; i++) {
            many[i] = m;
            rr[i] = cc[i] = side;
        }
        assert_int_equal(hm_fit(&g, HM_MAX_PANELS, pn, rr, cc, 1, 100), 0);
        assert_true(g.W <= HM_MAX_SIDE && g.H <= HM_MAX_SIDE && g.s >= 1 && g.f >= 1);
        assert_int_equal(g.ncols * g.nrows, HM_MAX_PANELS);
    }
    assert_true(g.f > 1);
    /* invalid input */
    assert_int_equal(sk_heatmap_write_png(path, 0, mats1, &big, &big, NULL, NULL, 1, &e),
                     SK_ERR_INVALID);
    assert_int_equal(sk_heatmap_write_png(path, HM_MAX_PANELS + 1, many, rr, cc, NULL, NULL, 1, &e),
                     SK_ERR_INVALID);
    assert_int_equal(sk_heatmap_write_png(NULL, 1, mats1, &big, &big, NULL, NULL, 1, &e),
                     SK_ERR_INVALID);
    assert_int_equal(sk_heatmap_write_png(path, 1, NULL, &big, &big, NULL, NULL, 1, &e),
                     SK_ERR_INVALID);
    const float *null1[1] = {NULL};
    assert_int_equal(sk_heatmap_write_png(path, 1, null1, &big, &big, NULL, NULL, 1, &e),
                     SK_ERR_INVALID);
    int zero = 0, neg = -4, over = HM_MAX_DIM + 1;
    assert_int_equal(sk_heatmap_write_png(path, 1, mats1, &zero, &big, NULL, NULL, 1, &e),
                     SK_ERR_INVALID);
    assert_int_equal(sk_heatmap_write_png(path, 1, mats1, &big, &neg, NULL, NULL, 1, &e),
                     SK_ERR_INVALID);
    assert_int_equal(sk_heatmap_write_png(path, 1, mats1, &over, &big, NULL, NULL, 1, &e),
                     SK_ERR_INVALID);
    assert_int_equal(sk_heatmap_write_png(path, 1, mats1, &big, &big, NULL, NULL, -1, &e),
                     SK_ERR_INVALID);
    assert_int_equal(sk_heatmap_write_png(path, 1, mats1, &big, &big, NULL, NULL, NAN, &e),
                     SK_ERR_INVALID);
    assert_int_equal(sk_heatmap_write_png("/nonexistent-dir/h.png", 1, mats1, &big, &big, NULL,
                                          NULL, 1, &e),
                     SK_ERR_IO);
    free(m);
    remove(path);
}

/* ---- demo images (SK_PLOT_DEMO=DIR) ------------------------------------- */

static void write_demos(const char *dir) {
    char path[512];
    enum { N = 400, R = 64, NP = 4 };
    double x[N], a[N], b[N], c[N];
    for (int i = 0; i < N; i++) {
        x[i] = i * 25;
        a[i] = 8 + 30 * exp(-i / 40.0) + 0.3 * sin(i * 0.3);
        b[i] = 9 + 25 * exp(-i / 60.0) + 0.3 * cos(i * 0.2);
        c[i] = i > 200 ? 9.5 + 0.002 * (i - 200) : 9 + 25 * exp(-i / 60.0);
    }
    c[150] = NAN;
    sk_plot *p = sk_plot_new(900, 560, "Perplexity vs position", "token position", "perplexity");
    sk_plot_add_series(p, "dense", x, a, N, NULL);
    sk_plot_add_series(p, "window 512", x, b, N, NULL);
    sk_plot_add_series(p, "sink 4 + window 508", x, c, N, NULL);
    snprintf(path, sizeof path, "%s/plot_demo.png", dir);
    assert_int_equal(sk_plot_write_png(p, path, NULL), SK_OK);
    sk_plot_free(p);

    static float m[NP][R * R];
    const float *ms[NP];
    int rs[NP], cs[NP];
    const char *ts[NP] = {"layer 0", "layer 2", "layer 5", "layer 11"};
    for (int k = 0; k < NP; k++) {
        for (int i = 0; i < R; i++) {
            double sum = 0;
            for (int j = 0; j <= i; j++) {
                double v = exp(-(i - j) / (3.0 + 5 * k)) + (j < 2 ? 3.0 * k : 0) + 0.05;
                m[k][i * R + j] = (float)v;
                sum += v;
            }
            for (int j = 0; j < R; j++) m[k][i * R + j] = j <= i ? (float)(m[k][i * R + j] / sum) : 0;
        }
        ms[k] = m[k];
        rs[k] = cs[k] = R;
    }
    snprintf(path, sizeof path, "%s/heat_demo.png", dir);
    assert_int_equal(sk_heatmap_write_png(path, NP, ms, rs, cs, ts, "Attention, head 0 (gamma 0.4)",
                                          0.4, NULL),
                     SK_OK);
}

static void test_demo(void **state) {
    (void)state;
    const char *dir = getenv("SK_PLOT_DEMO");
    if (dir && dir[0]) write_demos(dir);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/test_plot.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_font_table),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_axis_fit),
        cmocka_unit_test(test_text_clip),
        cmocka_unit_test(test_three_series),
        cmocka_unit_test(test_nan_gap_and_lone_point),
        cmocka_unit_test(test_degenerate_charts),
        cmocka_unit_test(test_bad_chart_input),
        cmocka_unit_test(test_heatmap),
        cmocka_unit_test(test_heatmap_degenerate),
        cmocka_unit_test(test_demo),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    DIR *d = opendir(g_dir); /* what a failed test left behind */
    for (struct dirent *de; d && (de = readdir(d));)
        if (de->d_name[0] != '.') remove(tmp_path(de->d_name));
    if (d) closedir(d);
    rmdir(g_dir);
    return rc;
}
