/* plot.c - line charts and heat maps drawn in software and written as PNG
 * (see plot.h).
 *
 * An sk_plot owns copies of its strings and series. Rendering allocates one
 * RGB canvas per call and frees it before returning. Every pixel write goes
 * through put()/fill_rect(), which clip to the canvas's clip rectangle (never
 * larger than the image), so no input can draw outside the buffer. Lines are
 * clipped in double precision before they are rasterized, so far-away or
 * huge coordinates cannot overflow an int. Text uses the 5x8 bitmap font
 * below, drawn at TS x TS pixels per font pixel. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

/* Header-only PNG encoder (Debian libstb-dev). Static linkage so that it
 * cannot clash with another copy; its unused functions are not warnings. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

/* ---- font ---------------------------------------------------------------
 * ASCII 32..126, 5 pixels wide, 8 rows: rows 0-6 hold capitals and digits,
 * row 7 the descenders (g j p q y , ;). One byte per row, bit 4 = leftmost
 * column. A character advances FONT_ADV font pixels. */
#define FONT_W 5
#define FONT_H 8
#define FONT_ADV 6
#define TS 2                  /* screen pixels per font pixel */
#define CHAR_W (FONT_ADV * TS) /* advance of one character on screen */
#define TEXT_H (FONT_H * TS)   /* height of a line of text on screen */

static const unsigned char FONT[95][FONT_H] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* space */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00}, /* '!' */
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '"' */
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00}, /* '#' */
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00}, /* '$' */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00}, /* '%' */
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00}, /* '&' */
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00}, /* quote */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00}, /* '(' */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00}, /* ')' */
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00}, /* '*' */
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00}, /* '+' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}, /* ',' */
    {0x00, 0x00, 0x00, 0x0E, 0x00, 0x00, 0x00, 0x00}, /* '-' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00}, /* '.' */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00}, /* '/' */
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00}, /* '0' */
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}, /* '1' */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00}, /* '2' */
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00}, /* '3' */
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00}, /* '4' */
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00}, /* '5' */
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00}, /* '6' */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00}, /* '7' */
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00}, /* '8' */
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00}, /* '9' */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00}, /* ':' */
    {0x00, 0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08}, /* ';' */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00}, /* '<' */
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00}, /* '=' */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00}, /* '>' */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00}, /* '?' */
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00}, /* '@' */
    {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00}, /* 'A' */
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00}, /* 'B' */
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00}, /* 'C' */
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00}, /* 'D' */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00}, /* 'E' */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00}, /* 'F' */
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00}, /* 'G' */
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00}, /* 'H' */
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}, /* 'I' */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00}, /* 'J' */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00}, /* 'K' */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00}, /* 'L' */
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00}, /* 'M' */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00}, /* 'N' */
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00}, /* 'O' */
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00}, /* 'P' */
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00}, /* 'Q' */
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00}, /* 'R' */
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00}, /* 'S' */
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* 'T' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00}, /* 'U' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00}, /* 'V' */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00}, /* 'W' */
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00}, /* 'X' */
    {0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04, 0x00}, /* 'Y' */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00}, /* 'Z' */
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00}, /* '[' */
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00}, /* backslash */
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00}, /* ']' */
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '^' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00}, /* '_' */
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '`' */
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00}, /* 'a' */
    {0x10, 0x10, 0x1E, 0x11, 0x11, 0x11, 0x1E, 0x00}, /* 'b' */
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00}, /* 'c' */
    {0x01, 0x01, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x00}, /* 'd' */
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00}, /* 'e' */
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00}, /* 'f' */
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* 'g' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}, /* 'h' */
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00}, /* 'i' */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0C}, /* 'j' */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00}, /* 'k' */
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}, /* 'l' */
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x15, 0x15, 0x00}, /* 'm' */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}, /* 'n' */
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00}, /* 'o' */
    {0x00, 0x00, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10}, /* 'p' */
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01}, /* 'q' */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00}, /* 'r' */
    {0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E, 0x00}, /* 's' */
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00}, /* 't' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00}, /* 'u' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00}, /* 'v' */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00}, /* 'w' */
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00}, /* 'x' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* 'y' */
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00}, /* 'z' */
    {0x03, 0x04, 0x04, 0x08, 0x04, 0x04, 0x03, 0x00}, /* '{' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* '|' */
    {0x18, 0x04, 0x04, 0x02, 0x04, 0x04, 0x18, 0x00}, /* '}' */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00}, /* '~' */
};

/* ---- colours --------------------------------------------------------- */
typedef struct rgb {
    unsigned char r, g, b;
} rgb;

static const rgb C_WHITE = {255, 255, 255};
static const rgb C_TEXT = {20, 20, 20};
static const rgb C_AXIS = {60, 60, 60};
static const rgb C_GRID = {228, 228, 228};
static const rgb C_LEGEND_EDGE = {170, 170, 170};
static const rgb C_NAN = {150, 150, 150};

/* Line colours, in the order series are added (then repeating). */
static const rgb PALETTE[10] = {
    {20, 100, 200},  /* blue */
    {230, 100, 20},  /* orange */
    {30, 150, 60},   /* green */
    {210, 40, 50},   /* red */
    {130, 80, 190},  /* purple */
    {140, 90, 50},   /* brown */
    {220, 90, 170},  /* pink */
    {100, 100, 100}, /* grey */
    {170, 170, 30},  /* olive */
    {20, 170, 190},  /* cyan */
};

/* Heat-map ramp: dark indigo -> blue -> teal -> green -> yellow, with
 * lightness rising steadily so that order reads without a legend. */
static const struct {
    double t;
    rgb c;
} RAMP[] = {
    {0.00, {18, 12, 60}},   {0.20, {45, 40, 130}},  {0.40, {35, 95, 150}},
    {0.60, {30, 150, 135}}, {0.80, {120, 200, 70}}, {1.00, {250, 232, 35}},
};

/* Colour of t in [0, 1] on the heat-map ramp (clamped; NaN is grey). */
static rgb colormap(double t) {
    if (!(t == t)) return C_NAN;
    if (t <= 0) return RAMP[0].c;
    const int n = (int)(sizeof RAMP / sizeof *RAMP);
    if (t >= 1) return RAMP[n - 1].c;
    int i = 0;
    while (i + 2 < n && t > RAMP[i + 1].t) i++;
    double u = (t - RAMP[i].t) / (RAMP[i + 1].t - RAMP[i].t);
    rgb a = RAMP[i].c, b = RAMP[i + 1].c, o;
    o.r = (unsigned char)lround(a.r + u * (b.r - a.r));
    o.g = (unsigned char)lround(a.g + u * (b.g - a.g));
    o.b = (unsigned char)lround(a.b + u * (b.b - a.b));
    return o;
}

/* ---- canvas ------------------------------------------------------------ */
typedef struct canvas {
    int w, h;
    unsigned char *px; /* (h, w, 3) RGB, row-major */
    int x0, y0, x1, y1; /* clip rectangle [x0, x1) x [y0, y1), inside the image */
} canvas;

static sk_status canvas_init(canvas *c, int w, int h, sk_error *err) {
    c->w = w;
    c->h = h;
    c->x0 = c->y0 = 0;
    c->x1 = w;
    c->y1 = h;
    c->px = malloc((size_t)w * (size_t)h * 3);
    if (!c->px) return sk_error_set(err, SK_ERR_NOMEM, "plot: no memory for a %dx%d image", w, h);
    memset(c->px, 255, (size_t)w * (size_t)h * 3);
    return SK_OK;
}

/* Restrict drawing to [x0, x0+w) x [y0, y0+h), intersected with the image. */
static void canvas_clip(canvas *c, int x0, int y0, int w, int h) {
    long long x1 = (long long)x0 + w, y1 = (long long)y0 + h;
    c->x0 = x0 < 0 ? 0 : x0;
    c->y0 = y0 < 0 ? 0 : y0;
    c->x1 = x1 > c->w ? c->w : (int)x1;
    c->y1 = y1 > c->h ? c->h : (int)y1;
    if (c->x1 < c->x0) c->x1 = c->x0;
    if (c->y1 < c->y0) c->y1 = c->y0;
}

static void canvas_unclip(canvas *c) { canvas_clip(c, 0, 0, c->w, c->h); }

static void put(canvas *c, int x, int y, rgb col) {
    if (x < c->x0 || x >= c->x1 || y < c->y0 || y >= c->y1) return;
    unsigned char *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = col.r;
    p[1] = col.g;
    p[2] = col.b;
}

static rgb get(const canvas *c, int x, int y) {
    const unsigned char *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    rgb o = {p[0], p[1], p[2]};
    return o;
}

static void fill_rect(canvas *c, int x, int y, int w, int h, rgb col) {
    long long xa = x, ya = y, xb = (long long)x + w, yb = (long long)y + h;
    if (xa < c->x0) xa = c->x0;
    if (ya < c->y0) ya = c->y0;
    if (xb > c->x1) xb = c->x1;
    if (yb > c->y1) yb = c->y1;
    for (long long yy = ya; yy < yb; yy++)
        for (long long xx = xa; xx < xb; xx++) put(c, (int)xx, (int)yy, col);
}

/* One-pixel outline of the rectangle [x, x+w) x [y, y+h). */
static void stroke_rect(canvas *c, int x, int y, int w, int h, rgb col) {
    fill_rect(c, x, y, w, 1, col);
    fill_rect(c, x, y + h - 1, w, 1, col);
    fill_rect(c, x, y, 1, h, col);
    fill_rect(c, x + w - 1, y, 1, h, col);
}

/* Clip the segment a-b to [xmin, xmax] x [ymin, ymax] (Liang-Barsky).
 * Returns 0 when nothing of it is inside. Coordinates must be finite. */
static int clip_segment(double *ax, double *ay, double *bx, double *by, double xmin,
                        double ymin, double xmax, double ymax) {
    double dx = *bx - *ax, dy = *by - *ay, t0 = 0, t1 = 1;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*ax - xmin, xmax - *ax, *ay - ymin, ymax - *ay};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return 0;
            continue;
        }
        double r = q[i] / p[i];
        if (p[i] < 0) {
            if (r > t1) return 0;
            if (r > t0) t0 = r;
        } else {
            if (r < t0) return 0;
            if (r < t1) t1 = r;
        }
    }
    double x0 = *ax + t0 * dx, y0 = *ay + t0 * dy;
    *bx = *ax + t1 * dx;
    *by = *ay + t1 * dy;
    *ax = x0;
    *ay = y0;
    return 1;
}

/* A line `thick` pixels wide from a to b (pixel-centre coordinates), clipped
 * to the canvas clip rectangle. */
static void draw_line(canvas *c, double ax, double ay, double bx, double by, int thick, rgb col) {
    if (!clip_segment(&ax, &ay, &bx, &by, c->x0 - 1.0, c->y0 - 1.0, (double)c->x1, (double)c->y1))
        return;
    int x = (int)lround(ax), y = (int)lround(ay), xe = (int)lround(bx), ye = (int)lround(by);
    int dx = abs(xe - x), dy = -abs(ye - y), sx = x < xe ? 1 : -1, sy = y < ye ? 1 : -1;
    int e = dx + dy, off = thick / 2;
    for (;;) { /* Bresenham; the clipped length is bounded by the image */
        fill_rect(c, x - off, y - off, thick, thick, col);
        if (x == xe && y == ye) break;
        int e2 = 2 * e;
        if (e2 >= dy) {
            e += dy;
            x += sx;
        }
        if (e2 <= dx) {
            e += dx;
            y += sy;
        }
    }
}

/* ---- text -------------------------------------------------------------- */

/* How many characters of s to draw within max_px, and whether the cut
 * needs an ellipsis: returns the drawn character count; *keep is how many
 * of them come from s (the rest are '.'). */
static size_t text_fit(const char *s, int max_px, size_t *keep) {
    size_t n = s ? strlen(s) : 0;
    size_t cap = max_px < CHAR_W - TS ? 0 : (size_t)(max_px + TS) / CHAR_W;
    if (n <= cap) {
        *keep = n;
        return n;
    }
    *keep = cap > 3 ? cap - 3 : cap;
    return cap;
}

static int text_width_n(size_t n) { return n ? (int)n * CHAR_W - TS : 0; }

/* Width in pixels that draw_text will use for s within max_px. */
static int text_width(const char *s, int max_px) {
    size_t keep;
    return text_width_n(text_fit(s, max_px, &keep));
}

/* Draw s, cut with "..." to fit max_px. Horizontal (vertical == 0): (x, y)
 * is the top-left corner. Vertical: the text reads upwards, turned 90
 * degrees counter-clockwise, and (x, y) is its bottom-left corner. Bytes
 * outside printable ASCII are drawn as '?'. Returns the width used. */
static int draw_text(canvas *c, int x, int y, const char *s, int max_px, rgb col, int vertical) {
    size_t keep, n = text_fit(s, max_px, &keep);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = i < keep ? (unsigned char)s[i] : '.';
        if (ch < 32 || ch > 126) ch = '?';
        const unsigned char *g = FONT[ch - 32];
        for (int r = 0; r < FONT_H; r++)
            for (int k = 0; k < FONT_W; k++) {
                if (!(g[r] & (0x10 >> k))) continue;
                int along = ((int)i * FONT_ADV + k) * TS;
                if (vertical)
                    fill_rect(c, x + r * TS, y - along - TS, TS, TS, col);
                else
                    fill_rect(c, x + along, y + r * TS, TS, TS, col);
            }
    }
    return text_width_n(n);
}

/* Horizontal text centred on cx, kept inside [lo, hi) when it fits. */
static void draw_text_centered(canvas *c, int cx, int y, const char *s, int lo, int hi, rgb col) {
    int tw = text_width(s, hi - lo);
    int x = cx - tw / 2;
    if (x + tw > hi) x = hi - tw;
    if (x < lo) x = lo;
    draw_text(c, x, y, s, hi - lo, col, 0);
}

/* ---- numbers and ticks ------------------------------------------------- */

/* The 1, 2 or 5 x 10^k step nearest above span / target. */
static double nice_step(double span, int target) {
    double raw = span / (target < 1 ? 1 : target);
    if (!(raw > 0) || !isfinite(raw)) return 1;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double m = f <= 1.0000001 ? 1 : f <= 2.0000001 ? 2 : f <= 5.0000001 ? 5 : 10;
    return m * mag;
}

/* "2.5e+07" -> "2.5e7", "1e-05" -> "1e-5", in place. */
static void compact_exp(char *s) {
    char *e = strchr(s, 'e');
    if (!e) return;
    char *d = e + 1, *r = e + 1;
    if (*r == '+') r++;
    else if (*r == '-') *d++ = *r++;
    while (*r == '0' && r[1]) r++;
    memmove(d, r, strlen(r) + 1);
}

/* 10^k: plain digits for 1e-3 .. 1e4, else "1eK". */
static void format_decade(char *buf, size_t n, int k) {
    if (k >= 0 && k <= 4) snprintf(buf, n, "%.0f", pow(10, k));
    else if (k < 0 && k >= -3) snprintf(buf, n, "%.*f", -k, pow(10, k));
    else snprintf(buf, n, "1e%d", k);
}

/* A tick value on a linear axis whose ticks are `step` apart and whose
 * largest magnitude is amax: just enough decimals to tell ticks apart,
 * scientific notation outside 1e-3 .. 1e6. */
static void format_linear(char *buf, size_t n, double v, double step, double amax) {
    if (v == 0) {
        snprintf(buf, n, "0");
        return;
    }
    int ls = (int)floor(log10(step) + 1e-9);
    if (amax >= 1e6 || amax < 1e-3) {
        int digits = (int)floor(log10(amax) + 1e-9) - ls;
        digits = digits < 0 ? 0 : digits > 6 ? 6 : digits;
        snprintf(buf, n, "%.*e", digits, v);
        compact_exp(buf);
    } else {
        int dec = ls < 0 ? -ls : 0;
        snprintf(buf, n, "%.*f", dec > 10 ? 10 : dec, v);
    }
}

/* A value with three significant digits, e.g. "0.05", "1.5e-5". */
static void format_value(char *buf, size_t n, double v) {
    snprintf(buf, n, "%.3g", v);
    compact_exp(buf);
}

#define MAX_TICKS 64
#define LABEL_LEN 32
#define AXIS_LIMIT 1e306 /* axis ranges are kept within +-this: spans stay finite */

/* One axis of a chart, in axis units (log10 of the value on a log axis). */
typedef struct axis {
    int log;
    double lo, hi;         /* drawn range, lo < hi */
    double step;           /* between major ticks (decades on a log axis) */
    int n_major, n_minor;
    double major[MAX_TICKS];
    double minor[MAX_TICKS];
    char label[MAX_TICKS][LABEL_LEN];
} axis;

static void axis_add_major(axis *a, double u, const char *label) {
    if (a->n_major >= MAX_TICKS) return;
    a->major[a->n_major] = u;
    snprintf(a->label[a->n_major], LABEL_LEN, "%s", label);
    a->n_major++;
}

/* Fit a linear axis: the fixed range [flo, fhi] when fixed, else the data
 * range [dlo, dhi] (has_data) widened to whole steps. About `target` ticks. */
static void axis_fit_linear(axis *a, int fixed, double flo, double fhi, int has_data, double dlo,
                            double dhi, int target) {
    double lo, hi, step;
    if (fixed) {
        lo = fmax(flo, -AXIS_LIMIT);
        hi = fmin(fhi, AXIS_LIMIT);
        if (!(hi - lo > fabs(lo / 2 + hi / 2) * 1e-12)) { /* a range below double precision */
            double mid = lo / 2 + hi / 2, d = mid == 0 ? 1 : fabs(mid) * 1e-6;
            lo = mid - d;
            hi = mid + d;
        }
        step = nice_step(hi - lo, target);
    } else {
        if (!has_data) {
            dlo = 0;
            dhi = 1;
        }
        dlo = fmax(dlo, -AXIS_LIMIT);
        dhi = fmin(dhi, AXIS_LIMIT);
        double mid = dlo / 2 + dhi / 2;
        if (!(dhi - dlo > fabs(mid) * 1e-9)) { /* one value (or too close to tell) */
            double d = mid == 0 ? 1 : fabs(mid) * 0.05;
            dlo = mid - d;
            dhi = mid + d;
        }
        step = nice_step(dhi - dlo, target);
        lo = floor(dlo / step) * step;
        hi = ceil(dhi / step) * step;
        if (!(hi > lo)) hi = lo + step;
    }
    a->log = 0;
    a->lo = lo;
    a->hi = hi;
    a->step = step;
    a->n_major = a->n_minor = 0;
    double amax = fmax(fabs(lo), fabs(hi)), k0 = ceil(lo / step - 1e-9);
    for (int j = 0; j < MAX_TICKS; j++) {
        double v = (k0 + j) * step;
        if (v > hi + step * 1e-9) break;
        if (fabs(v) < step * 1e-9) v = 0;
        char buf[LABEL_LEN];
        format_linear(buf, sizeof buf, v, step, amax);
        axis_add_major(a, v, buf);
    }
}

/* Fit a log axis (units are log10): the fixed range when fixed, else the
 * data range widened to whole decades. Decades are labelled (every
 * step-th); with one decade or less, also 2x and 5x; minor ticks at 2..9 x. */
static void axis_fit_log(axis *a, int fixed, double flo, double fhi, int has_data, double dlo,
                         double dhi, int target) {
    double lo, hi;
    if (fixed) {
        lo = flo;
        hi = fhi;
    } else if (!has_data) {
        lo = 0;
        hi = 1;
    } else {
        lo = floor(dlo);
        hi = ceil(dhi);
        if (hi <= lo) { /* all values one power of ten */
            lo -= 1;
            hi += 1;
        }
    }
    if (!(hi - lo > 1e-9)) hi = lo + 1e-9;
    a->log = 1;
    a->lo = lo;
    a->hi = hi;
    a->n_major = a->n_minor = 0;
    double step = nice_step(hi - lo, target);
    step = step < 1 ? 1 : round(step);
    a->step = step;
    char buf[LABEL_LEN];
    for (double k = ceil(lo / step - 1e-9) * step; k <= hi + 1e-9 && a->n_major < MAX_TICKS;
         k += step) {
        format_decade(buf, sizeof buf, (int)k);
        axis_add_major(a, k, buf);
    }
    if (a->n_major < 2) { /* a narrow fixed range: label 1, 2, 5 (then 1..9) x 10^k */
        for (int pass = 0; pass < 2 && a->n_major < 2; pass++) {
            a->n_major = 0;
            for (double d = floor(lo); d <= ceil(hi); d++)
                for (int m = 1; m <= 9; m++) {
                    if (pass == 0 && m != 1 && m != 2 && m != 5) continue;
                    double u = d + log10(m);
                    if (u < lo - 1e-9 || u > hi + 1e-9) continue;
                    format_value(buf, sizeof buf, pow(10, u));
                    axis_add_major(a, u, buf);
                }
        }
        return;
    }
    if (step == 1 && hi - lo <= 12)
        for (double d = floor(lo); d < hi && a->n_minor < MAX_TICKS; d++)
            for (int m = 2; m <= 9 && a->n_minor < MAX_TICKS; m++) {
                double u = d + log10(m);
                if (u > lo && u < hi) a->minor[a->n_minor++] = u;
            }
}

/* Widest tick label of the axis, in pixels. */
static int axis_label_width(const axis *a) {
    int w = 0;
    for (int i = 0; i < a->n_major; i++) {
        int t = text_width(a->label[i], 1 << 20);
        if (t > w) w = t;
    }
    return w;
}

/* Pixels between neighbouring major ticks when the axis spans len pixels. */
static double axis_spacing(const axis *a, int len) {
    if (a->n_major < 2) return len;
    return (a->major[1] - a->major[0]) / (a->hi - a->lo) * len;
}

/* ---- line charts ------------------------------------------------------- */

typedef struct series {
    char *label;
    double *x, *y; /* (n) each; x[i] = i when the caller passed no x */
    int64_t n;
} series;

struct sk_plot {
    int w, h;
    char *title, *xlabel, *ylabel; /* never NULL; "" when absent */
    int logx, logy;
    int fixx, fixy;                /* fixed ranges set */
    double xlo, xhi, ylo, yhi;     /* the fixed ranges, in data units */
    series *s;                     /* (n_series) */
    int n_series, cap_series;
};

static char *dup_str(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* A new empty chart; NULL on a size outside SK_PLOT_MIN_SIZE..MAX or no
 * memory. The strings are copied (NULL = none). */
sk_plot *sk_plot_new(int width, int height, const char *title, const char *xlabel,
                     const char *ylabel) {
    if (width < SK_PLOT_MIN_SIZE || width > SK_PLOT_MAX_SIZE || height < SK_PLOT_MIN_SIZE ||
        height > SK_PLOT_MAX_SIZE)
        return NULL;
    sk_plot *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->w = width;
    p->h = height;
    p->title = dup_str(title);
    p->xlabel = dup_str(xlabel);
    p->ylabel = dup_str(ylabel);
    if (!p->title || !p->xlabel || !p->ylabel) {
        sk_plot_free(p);
        return NULL;
    }
    return p;
}

/* Free the chart, its strings and its series copies; NULL is a no-op. */
void sk_plot_free(sk_plot *p) {
    if (!p) return;
    for (int i = 0; i < p->n_series; i++) {
        free(p->s[i].label);
        free(p->s[i].x);
        free(p->s[i].y);
    }
    free(p->s);
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    free(p);
}

/* Turn the log10 x axis on (non-zero) or off. NULL p is ignored. */
void sk_plot_set_logx(sk_plot *p, int on) {
    if (p) p->logx = on != 0;
}

/* Turn the log10 y axis on (non-zero) or off. NULL p is ignored. */
void sk_plot_set_logy(sk_plot *p, int on) {
    if (p) p->logy = on != 0;
}

static sk_status check_range(const sk_plot *p, double lo, double hi, sk_error *err) {
    if (!p) return sk_error_set(err, SK_ERR_INVALID, "plot: NULL chart");
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
        return sk_error_set(err, SK_ERR_INVALID, "plot: range [%g, %g] is not lo < hi, finite",
                            lo, hi);
    return SK_OK;
}

/* Fix the x range to [lo, hi]; SK_ERR_INVALID unless finite with lo < hi. */
sk_status sk_plot_set_xrange(sk_plot *p, double lo, double hi, sk_error *err) {
    sk_status st = check_range(p, lo, hi, err);
    if (st) return st;
    p->fixx = 1;
    p->xlo = lo;
    p->xhi = hi;
    return SK_OK;
}

/* Fix the y range to [lo, hi]; SK_ERR_INVALID unless finite with lo < hi. */
sk_status sk_plot_set_yrange(sk_plot *p, double lo, double hi, sk_error *err) {
    sk_status st = check_range(p, lo, hi, err);
    if (st) return st;
    p->fixy = 1;
    p->ylo = lo;
    p->yhi = hi;
    return SK_OK;
}

/* Append a copy of the series (x NULL = 0, 1, 2, ...). SK_ERR_INVALID for
 * a NULL chart, n < 0 or NULL y with n > 0; SK_ERR_NOMEM. The chart is
 * unchanged on error. */
sk_status sk_plot_add_series(sk_plot *p, const char *label, const double *x, const double *y,
                             int64_t n, sk_error *err) {
    if (!p) return sk_error_set(err, SK_ERR_INVALID, "plot: NULL chart");
    if (n < 0) return sk_error_set(err, SK_ERR_INVALID, "plot: series length %lld < 0", (long long)n);
    if (n > 0 && !y) return sk_error_set(err, SK_ERR_INVALID, "plot: series has no y values");
    if ((uint64_t)n > SIZE_MAX / sizeof(double) || p->n_series >= (1 << 20))
        return sk_error_set(err, SK_ERR_NOMEM, "plot: series too large");
    if (p->n_series == p->cap_series) {
        int cap = p->cap_series ? p->cap_series * 2 : 8;
        series *s = realloc(p->s, sizeof *s * (size_t)cap);
        if (!s) return sk_error_set(err, SK_ERR_NOMEM, "plot: no memory for a series");
        p->s = s;
        p->cap_series = cap;
    }
    series sr = {0};
    char auto_label[32];
    snprintf(auto_label, sizeof auto_label, "series %d", p->n_series + 1);
    sr.label = dup_str(label ? label : auto_label);
    sr.n = n;
    size_t bytes = (size_t)n * sizeof(double);
    sr.x = malloc(bytes ? bytes : 1);
    sr.y = malloc(bytes ? bytes : 1);
    if (!sr.label || !sr.x || !sr.y) {
        free(sr.label);
        free(sr.x);
        free(sr.y);
        return sk_error_set(err, SK_ERR_NOMEM, "plot: no memory for %lld points", (long long)n);
    }
    for (int64_t i = 0; i < n; i++) sr.x[i] = x ? x[i] : (double)i;
    if (n) memcpy(sr.y, y, bytes);
    p->s[p->n_series++] = sr;
    return SK_OK;
}

/* Where a chart's parts go. */
typedef struct layout {
    int px0, py0, pw, ph; /* plot area [px0, px0+pw) x [py0, py0+ph) */
    axis ax, ay;
    int title_y, xlabel_y, ylabel_x, ytick_right, xtick_y;
} layout;

/* Axis units of a data value: log10 on a log axis (NaN for v <= 0), NaN
 * for NaN/inf, and clamped to +-1e307 so differences stay finite. */
static double to_unit(int log, double v) {
    if (!isfinite(v)) return NAN;
    if (log) return v > 0 ? log10(v) : NAN;
    return fmax(-1e307, fmin(1e307, v));
}

/* Pixel coordinates of axis units, clamped to +-1e9 (far off-image). */
static double map_x(const layout *L, double u) {
    double t = (u - L->ax.lo) / (L->ax.hi - L->ax.lo);
    double v = L->px0 + t * (L->pw - 1);
    return v != v ? -1e9 : fmax(-1e9, fmin(1e9, v));
}

static double map_y(const layout *L, double u) {
    double t = (u - L->ay.lo) / (L->ay.hi - L->ay.lo);
    double v = L->py0 + (1 - t) * (L->ph - 1);
    return v != v ? -1e9 : fmax(-1e9, fmin(1e9, v));
}

/* Lay the chart out: fit the axes to the data and size the margins around
 * the tick labels. Fails only for a non-positive fixed range on a log axis. */
static sk_status plot_layout(const sk_plot *p, layout *L, sk_error *err) {
    if ((p->logx && p->fixx && !(p->xlo > 0)) || (p->logy && p->fixy && !(p->ylo > 0)))
        return sk_error_set(err, SK_ERR_INVALID, "plot: a log axis needs a positive fixed range");
    memset(L, 0, sizeof *L);
    int has = 0;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int s = 0; s < p->n_series; s++)
        for (int64_t i = 0; i < p->s[s].n; i++) {
            double ux = to_unit(p->logx, p->s[s].x[i]), uy = to_unit(p->logy, p->s[s].y[i]);
            if (ux != ux || uy != uy) continue;
            has = 1;
            xlo = fmin(xlo, ux);
            xhi = fmax(xhi, ux);
            ylo = fmin(ylo, uy);
            yhi = fmax(yhi, uy);
        }
    double fxlo = p->logx ? log10(p->xlo) : p->xlo, fxhi = p->logx ? log10(p->xhi) : p->xhi;
    double fylo = p->logy ? log10(p->ylo) : p->ylo, fyhi = p->logy ? log10(p->yhi) : p->yhi;

    /* vertical: title, plot, tick labels, x label */
    int top = p->title[0] ? 14 + TEXT_H + 14 : 20;
    int bottom = 6 + 6 + TEXT_H + (p->xlabel[0] ? 12 + TEXT_H : 0) + 12;
    L->title_y = 14;
    L->py0 = top;
    L->ph = p->h - top - bottom;
    if (L->ph < 40) L->ph = 40;
    L->xtick_y = L->py0 + L->ph + 6 + 6;
    L->xlabel_y = L->xtick_y + TEXT_H + 12;

    for (int target = L->ph / 70 < 2 ? 2 : L->ph / 70 > 10 ? 10 : L->ph / 70;; target--) {
        if (p->logy) axis_fit_log(&L->ay, p->fixy, fylo, fyhi, has, ylo, yhi, target);
        else axis_fit_linear(&L->ay, p->fixy, fylo, fyhi, has, ylo, yhi, target);
        if (target <= 1 || axis_spacing(&L->ay, L->ph) >= TEXT_H + 10) break;
    }

    /* horizontal: y label, tick labels, plot, room for the last x label */
    int ylab = p->ylabel[0] ? TEXT_H + 16 : 0;
    int left = 12 + ylab + axis_label_width(&L->ay) + 6 + 6;
    if (left > p->w / 2) left = p->w / 2;
    L->ylabel_x = 12;
    L->ytick_right = left - 6 - 6;
    L->px0 = left;
    int right = 24;
    for (int pass = 0; pass < 2; pass++) {
        L->pw = p->w - left - right;
        if (L->pw < 40) L->pw = 40;
        int target = L->pw / 90 < 2 ? 2 : L->pw / 90 > 12 ? 12 : L->pw / 90;
        for (;; target--) {
            if (p->logx) axis_fit_log(&L->ax, p->fixx, fxlo, fxhi, has, xlo, xhi, target);
            else axis_fit_linear(&L->ax, p->fixx, fxlo, fxhi, has, xlo, xhi, target);
            if (target <= 1 || axis_spacing(&L->ax, L->pw) >= axis_label_width(&L->ax) + 16) break;
        }
        int half = L->ax.n_major ? text_width(L->ax.label[L->ax.n_major - 1], 1 << 20) / 2 + 8 : 0;
        if (half <= right || half > p->w / 4) break;
        right = half;
    }
    return SK_OK;
}

/* Count of pixels in the box that are neither background nor grid: how
 * much of the data a legend placed there would hide. */
static long long busy_pixels(const canvas *c, int x, int y, int w, int h) {
    long long n = 0;
    for (int yy = y < 0 ? 0 : y; yy < y + h && yy < c->h; yy++)
        for (int xx = x < 0 ? 0 : x; xx < x + w && xx < c->w; xx++) {
            rgb v = get(c, xx, yy);
            if (!(v.r == 255 && v.g == 255 && v.b == 255) &&
                !(v.r == C_GRID.r && v.g == C_GRID.g && v.b == C_GRID.b))
                n++;
        }
    return n;
}

#define LEGEND_ROW 22
#define LEGEND_SWATCH 28

/* The legend: a framed box listing each series' colour and label, in the
 * corner of the plot area that hides the fewest drawn pixels. */
static void draw_legend(const sk_plot *p, const layout *L, canvas *c) {
    if (p->n_series == 0) return;
    int rows_fit = (L->ph - 20 - 10) / LEGEND_ROW;
    if (rows_fit < 1) return;
    int n_rows = p->n_series <= rows_fit ? p->n_series : rows_fit;
    int max_label = L->pw / 2;
    if (max_label > 30 * CHAR_W) max_label = 30 * CHAR_W;
    max_label -= 10 + LEGEND_SWATCH + 8 + 10;
    if (max_label < CHAR_W) return;
    char more[48];
    snprintf(more, sizeof more, "+%d more", p->n_series - (n_rows - 1));
    int lw = 0;
    for (int i = 0; i < n_rows; i++) {
        int shown_more = p->n_series > n_rows && i == n_rows - 1;
        int t = text_width(shown_more ? more : p->s[i].label, max_label);
        if (t > lw) lw = t;
    }
    int bw = 10 + LEGEND_SWATCH + 8 + lw + 10, bh = n_rows * LEGEND_ROW + 10;
    int xs[4] = {L->px0 + L->pw - bw - 10, L->px0 + 10, L->px0 + L->pw - bw - 10, L->px0 + 10};
    int ys[4] = {L->py0 + 10, L->py0 + 10, L->py0 + L->ph - bh - 10, L->py0 + L->ph - bh - 10};
    int best = 0;
    long long best_n = -1;
    for (int k = 0; k < 4; k++) {
        long long n = busy_pixels(c, xs[k], ys[k], bw, bh);
        if (best_n < 0 || n < best_n) {
            best_n = n;
            best = k;
        }
    }
    int bx = xs[best], by = ys[best];
    canvas_clip(c, L->px0, L->py0, L->pw, L->ph);
    fill_rect(c, bx, by, bw, bh, C_WHITE);
    stroke_rect(c, bx, by, bw, bh, C_LEGEND_EDGE);
    for (int i = 0; i < n_rows; i++) {
        int ry = by + 5 + i * LEGEND_ROW;
        if (p->n_series > n_rows && i == n_rows - 1) {
            draw_text(c, bx + 10 + LEGEND_SWATCH + 8, ry + 3, more, max_label, C_TEXT, 0);
            break;
        }
        fill_rect(c, bx + 10, ry + LEGEND_ROW / 2 - 2, LEGEND_SWATCH, 4, PALETTE[i % 10]);
        draw_text(c, bx + 10 + LEGEND_SWATCH + 8, ry + 3, p->s[i].label, max_label, C_TEXT, 0);
    }
    canvas_unclip(c);
}

/* Draw the whole chart onto c (already white, p->w x p->h). */
static void plot_render(const sk_plot *p, const layout *L, canvas *c) {
    const axis *ax = &L->ax, *ay = &L->ay;
    int x0 = L->px0, y0 = L->py0, y1 = L->py0 + L->ph - 1;

    /* grid at the major ticks */
    for (int i = 0; i < ax->n_major; i++)
        fill_rect(c, (int)lround(map_x(L, ax->major[i])), y0, 1, L->ph, C_GRID);
    for (int i = 0; i < ay->n_major; i++)
        fill_rect(c, x0, (int)lround(map_y(L, ay->major[i])), L->pw, 1, C_GRID);

    /* series, clipped to the plot area */
    canvas_clip(c, x0, y0, L->pw, L->ph);
    for (int s = 0; s < p->n_series; s++) {
        const series *sr = &p->s[s];
        rgb col = PALETTE[s % 10];
        int prev_ok = 0;
        double px = 0, py = 0;
        for (int64_t i = 0; i < sr->n; i++) {
            double ux = to_unit(p->logx, sr->x[i]), uy = to_unit(p->logy, sr->y[i]);
            int ok = ux == ux && uy == uy;
            if (!ok) {
                prev_ok = 0;
                continue;
            }
            double qx = map_x(L, ux), qy = map_y(L, uy);
            if (prev_ok) draw_line(c, px, py, qx, qy, 2, col);
            int next_ok = 0;
            if (i + 1 < sr->n) {
                double nx = to_unit(p->logx, sr->x[i + 1]), ny = to_unit(p->logy, sr->y[i + 1]);
                next_ok = nx == nx && ny == ny;
            }
            if (!prev_ok && !next_ok && fabs(qx) < 1e8 && fabs(qy) < 1e8) /* a lone point */
                fill_rect(c, (int)lround(qx) - 3, (int)lround(qy) - 3, 6, 6, col);
            px = qx;
            py = qy;
            prev_ok = 1;
        }
    }
    canvas_unclip(c);

    /* frame, ticks and tick labels */
    stroke_rect(c, x0, y0, L->pw, L->ph, C_AXIS);
    for (int i = 0; i < ax->n_minor; i++)
        fill_rect(c, (int)lround(map_x(L, ax->minor[i])), y1 + 1, 1, 3, C_AXIS);
    for (int i = 0; i < ay->n_minor; i++)
        fill_rect(c, x0 - 3, (int)lround(map_y(L, ay->minor[i])), 3, 1, C_AXIS);
    for (int i = 0; i < ax->n_major; i++) {
        int tx = (int)lround(map_x(L, ax->major[i]));
        fill_rect(c, tx, y1 + 1, 1, 6, C_AXIS);
        draw_text_centered(c, tx, L->xtick_y, ax->label[i], 0, p->w, C_TEXT);
    }
    for (int i = 0; i < ay->n_major; i++) {
        int ty = (int)lround(map_y(L, ay->major[i]));
        fill_rect(c, x0 - 6, ty, 6, 1, C_AXIS);
        int room = L->ytick_right - L->ylabel_x;
        int tw = text_width(ay->label[i], room);
        draw_text(c, L->ytick_right - tw, ty - TEXT_H / 2 + 1, ay->label[i], room, C_TEXT, 0);
    }

    /* title, axis labels, legend */
    if (p->title[0]) draw_text_centered(c, p->w / 2, L->title_y, p->title, 10, p->w - 10, C_TEXT);
    if (p->xlabel[0])
        draw_text_centered(c, x0 + L->pw / 2, L->xlabel_y, p->xlabel, 10, p->w - 10, C_TEXT);
    if (p->ylabel[0]) {
        int room = L->ph;
        int tw = text_width(p->ylabel, room);
        int by = y0 + L->ph / 2 + tw / 2;
        if (by > p->h - 10) by = p->h - 10;
        draw_text(c, L->ylabel_x, by, p->ylabel, room, C_TEXT, 1);
    }
    draw_legend(p, L, c);
}

typedef struct png_sink {
    FILE *f;
    int failed;
} png_sink;

static void png_write_cb(void *ctx, void *data, int size) {
    png_sink *s = ctx;
    if (size > 0 && fwrite(data, 1, (size_t)size, s->f) != (size_t)size) s->failed = 1;
}

/* Encode the canvas as PNG into path, checking every write and the close.
 * A failed write may leave a partial file (path is not removed: it need not
 * be a regular file). */
static sk_status canvas_write_png(const canvas *c, const char *path, sk_error *err) {
    if (!path) return sk_error_set(err, SK_ERR_INVALID, "plot: NULL output path");
    png_sink s = {fopen(path, "wb"), 0};
    if (!s.f) return sk_error_set(err, SK_ERR_IO, "plot: cannot create %s: %s", path, strerror(errno));
    int ok = stbi_write_png_to_func(png_write_cb, &s, c->w, c->h, 3, c->px, c->w * 3);
    int closed = fclose(s.f) == 0;
    if (!ok)
        return sk_error_set(err, SK_ERR_NOMEM, "plot: PNG encoding of %s ran out of memory", path);
    if (s.failed || !closed)
        return sk_error_set(err, SK_ERR_IO, "plot: cannot write %s: %s", path, strerror(errno));
    return SK_OK;
}

/* Render the chart and write it as PNG at path (see plot.h for errors). */
sk_status sk_plot_write_png(const sk_plot *p, const char *path, sk_error *err) {
    if (!p) return sk_error_set(err, SK_ERR_INVALID, "plot: NULL chart");
    if (!path) return sk_error_set(err, SK_ERR_INVALID, "plot: NULL output path");
    layout L;
    sk_status st = plot_layout(p, &L, err);
    if (st) return st;
    canvas c;
    if ((st = canvas_init(&c, p->w, p->h, err))) return st;
    plot_render(p, &L, &c);
    st = canvas_write_png(&c, path, err);
    free(c.px);
    return st;
}

/* ---- heat maps --------------------------------------------------------- */

#define HM_MAX_PANELS 256
#define HM_MAX_DIM 65536
#define HM_MAX_SIDE 8192 /* pixels per side of the whole figure */
#define HM_TARGET 512     /* pixels per matrix side */
#define HM_MARGIN 16
#define HM_BAR_W 18
#define HM_MAX_CTICKS 24

/* The colour scale shared by all panels. */
typedef struct hm_scale {
    int log;        /* log10 scale over [lo, hi] (lo > 0) */
    double lo, hi;  /* value range, lo < hi */
    double gamma;   /* position t is coloured at t^gamma (linear scale) */
} hm_scale;

/* Position in [0, 1] of value v on the colour ramp; NaN stays NaN. */
static double hm_pos(const hm_scale *s, double v) {
    if (v != v) return NAN;
    double t;
    if (s->log) t = v > 0 ? (log10(v) - log10(s->lo)) / (log10(s->hi) - log10(s->lo)) : 0;
    else t = (v - s->lo) / (s->hi - s->lo);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    if (!s->log && s->gamma != 1) t = pow(t, s->gamma);
    return t;
}

/* Colour-bar ticks: value position and label. */
typedef struct hm_ticks {
    int n;
    double pos[HM_MAX_CTICKS];
    char label[HM_MAX_CTICKS][LABEL_LEN];
} hm_ticks;

/* Candidate ticks for the colour bar, most important first: decades (then
 * 2x, 5x and the range ends) on a log scale; else 1/2/5 x 10^k steps, plus
 * decades below the top when gamma < 1 stretches the small values. Spacing
 * is settled when drawn. */
static void hm_make_ticks(const hm_scale *s, hm_ticks *t) {
    t->n = 0;
    char buf[LABEL_LEN];
    if (s->log) {
        double l0 = log10(s->lo), l1 = log10(s->hi);
        for (double k = ceil(l0 - 1e-9); k <= l1 + 1e-9 && t->n < HM_MAX_CTICKS; k++) {
            format_decade(buf, sizeof buf, (int)k);
            t->pos[t->n] = hm_pos(s, pow(10, k));
            snprintf(t->label[t->n++], LABEL_LEN, "%s", buf);
        }
        for (double k = floor(l0); k <= l1 && t->n < HM_MAX_CTICKS - 2; k++)
            for (int m = 2; m <= 5; m += 3) {
                double v = m * pow(10, k);
                if (v < s->lo || v > s->hi) continue;
                format_value(buf, sizeof buf, v);
                t->pos[t->n] = hm_pos(s, v);
                snprintf(t->label[t->n++], LABEL_LEN, "%s", buf);
            }
        for (int end = 0; end < 2 && t->n < HM_MAX_CTICKS; end++) { /* the range ends */
            format_value(buf, sizeof buf, end ? s->hi : s->lo);
            t->pos[t->n] = end;
            snprintf(t->label[t->n++], LABEL_LEN, "%s", buf);
        }
        return;
    }
    double step = nice_step(s->hi - s->lo, 5), amax = fmax(fabs(s->lo), fabs(s->hi));
    double k0 = ceil(s->lo / step - 1e-9);
    for (int j = 0; j < 12 && t->n < HM_MAX_CTICKS; j++) {
        double v = (k0 + j) * step;
        if (v > s->hi + step * 1e-9) break;
        if (fabs(v) < step * 1e-9) v = 0;
        format_linear(buf, sizeof buf, v, step, amax);
        t->pos[t->n] = hm_pos(s, v);
        snprintf(t->label[t->n++], LABEL_LEN, "%s", buf);
    }
    if (s->gamma < 1 && s->hi > 0) {
        double top = floor(log10(s->hi));
        for (double k = top - 1; k >= top - 5 && t->n < HM_MAX_CTICKS; k--) {
            double v = pow(10, k);
            if (v <= s->lo) break;
            format_value(buf, sizeof buf, v);
            t->pos[t->n] = hm_pos(s, v);
            snprintf(t->label[t->n++], LABEL_LEN, "%s", buf);
        }
    }
}

/* One panel's display size. */
typedef struct hm_panel {
    int dr, dc; /* displayed cells: rows, cols shrunk by the block factor */
} hm_panel;

/* Largest finite value of the block of cells (r0.., c0..) of size f x f,
 * clipped to the matrix; NaN when the block has none. */
static double block_max(const float *m, int rows, int cols, int r0, int c0, int f) {
    double best = NAN;
    int r1 = r0 + f > rows ? rows : r0 + f, c1 = c0 + f > cols ? cols : c0 + f;
    for (int r = r0; r < r1; r++)
        for (int c = c0; c < c1; c++) {
            double v = m[(size_t)r * (size_t)cols + (size_t)c];
            if (isfinite(v) && !(v <= best)) best = v;
        }
    return best;
}

/* Integer tick step of about `target` ticks over n indices. */
static int index_step(int n, int target) {
    double s = nice_step(n, target);
    return s < 1 ? 1 : s > 1e9 ? 1000000000 : (int)lround(s);
}

/* Figure geometry for a given cell size (pixels per displayed cell). */
typedef struct hm_geom {
    int s, f;                    /* pixels per cell, cells per block */
    int ncols, nrows;            /* panel grid */
    int gut, cell_w, row_h;      /* y tick gutter, panel pitch */
    int supt_h, title_h, tick_h; /* text bands */
    int bar_h, bar_x, bar_y, bar_label_w;
    int W, H;
} hm_geom;

static void hm_geometry(hm_geom *g, int n_panels, const hm_panel *pn, const int *rows,
                        int has_supt, int bar_label_w) {
    int maxr = 1, maxmw = 1, maxmh = 1;
    for (int i = 0; i < n_panels; i++) {
        if (rows[i] > maxr) maxr = rows[i];
        if (pn[i].dc * g->s > maxmw) maxmw = pn[i].dc * g->s;
        if (pn[i].dr * g->s > maxmh) maxmh = pn[i].dr * g->s;
    }
    char buf[16];
    snprintf(buf, sizeof buf, "%d", maxr - 1);
    g->gut = text_width(buf, 1 << 20) + 4 + 6 + 4;
    g->cell_w = g->gut + (maxmw > 8 * CHAR_W ? maxmw : 8 * CHAR_W) + 24;
    g->supt_h = has_supt ? TEXT_H + 14 : 0;
    g->title_h = TEXT_H + 8;
    g->tick_h = 4 + 4 + TEXT_H + 16;
    g->bar_h = maxmh > 160 ? maxmh : 160;
    g->row_h = g->title_h + g->bar_h + g->tick_h;
    g->ncols = n_panels <= 4 ? n_panels : (int)ceil(sqrt((double)n_panels));
    if (g->ncols < 4 && n_panels > 4) g->ncols = 4;
    g->nrows = (n_panels + g->ncols - 1) / g->ncols;
    g->bar_label_w = bar_label_w;
    g->bar_x = HM_MARGIN + g->ncols * g->cell_w + 8;
    g->bar_y = HM_MARGIN + g->supt_h + g->title_h;
    long long W = (long long)g->bar_x + HM_BAR_W + 4 + 6 + bar_label_w + HM_MARGIN;
    long long H = (long long)HM_MARGIN + g->supt_h + (long long)g->nrows * g->row_h + HM_MARGIN;
    g->W = W > HM_MAX_SIDE ? HM_MAX_SIDE + 1 : (int)W;
    g->H = H > HM_MAX_SIDE ? HM_MAX_SIDE + 1 : (int)H;
}

/* Choose the cell size (up to HM_TARGET pixels per matrix side, at most 32
 * per cell) and the block factor, shrinking both until the figure fits in
 * HM_MAX_SIDE; fill g and pn. Returns 0, or -1 when nothing fits. */
static int hm_fit(hm_geom *g, int n_panels, hm_panel *pn, const int *rows, const int *cols,
                  int has_supt, int bar_label_w) {
    int maxdim = 1;
    for (int i = 0; i < n_panels; i++) {
        if (rows[i] > maxdim) maxdim = rows[i];
        if (cols[i] > maxdim) maxdim = cols[i];
    }
    memset(g, 0, sizeof *g);
    g->f = maxdim > HM_TARGET ? (maxdim + HM_TARGET - 1) / HM_TARGET : 1;
    g->s = g->f > 1 ? 1 : HM_TARGET / maxdim > 32 ? 32 : HM_TARGET / maxdim;
    for (;;) {
        for (int i = 0; i < n_panels; i++) {
            pn[i].dr = (rows[i] + g->f - 1) / g->f;
            pn[i].dc = (cols[i] + g->f - 1) / g->f;
        }
        hm_geometry(g, n_panels, pn, rows, has_supt, bar_label_w);
        if (g->W <= HM_MAX_SIDE && g->H <= HM_MAX_SIDE) return 0;
        if (g->s > 1) g->s--;
        else if (g->f < maxdim) g->f *= 2;
        else return -1;
    }
}

/* Draw panel i: title, cells, frame, row and column index ticks. */
static void hm_draw_panel(canvas *c, const hm_geom *g, const hm_scale *sc, int i,
                          const hm_panel *pn, const float *m, int rows, int cols,
                          const char *title) {
    int cx = HM_MARGIN + (i % g->ncols) * g->cell_w;
    int cy = HM_MARGIN + g->supt_h + (i / g->ncols) * g->row_h;
    int mx = cx + g->gut, my = cy + g->title_h, s = g->s, f = g->f;
    int mw = pn->dc * s, mh = pn->dr * s;
    if (title && title[0])
        draw_text_centered(c, mx + mw / 2, cy, title, cx, cx + g->cell_w - 16, C_TEXT);
    for (int r = 0; r < pn->dr; r++)
        for (int k = 0; k < pn->dc; k++) {
            double v = f == 1 ? m[(size_t)r * (size_t)cols + (size_t)k]
                              : block_max(m, rows, cols, r * f, k * f, f);
            if (!isfinite(v)) v = NAN;
            fill_rect(c, mx + k * s, my + r * s, s, s, colormap(hm_pos(sc, v)));
        }
    stroke_rect(c, mx - 1, my - 1, mw + 2, mh + 2, C_AXIS);
    char buf[24];
    int step = index_step(rows, mh / 50 < 1 ? 1 : mh / 50), last = -1000000;
    for (long long r = 0; r < rows; r += step) {
        int ty = my + (int)(r / f) * s + s / 2;
        if (ty - last < TEXT_H + 2) continue;
        last = ty;
        fill_rect(c, mx - 5, ty, 4, 1, C_AXIS);
        snprintf(buf, sizeof buf, "%lld", r);
        int tw = text_width(buf, 1 << 20);
        draw_text(c, mx - 5 - 4 - tw, ty - TEXT_H / 2 + 1, buf, 1 << 20, C_TEXT, 0);
    }
    step = index_step(cols, mw / 60 < 1 ? 1 : mw / 60);
    last = -1000000;
    for (long long k = 0; k < cols; k += step) {
        int tx = mx + (int)(k / f) * s + s / 2;
        snprintf(buf, sizeof buf, "%lld", k);
        int tw = text_width(buf, 1 << 20);
        if (tx - tw / 2 < last + 8) continue;
        last = tx - tw / 2 + tw;
        fill_rect(c, tx, my + mh + 1, 1, 4, C_AXIS);
        draw_text(c, tx - tw / 2, my + mh + 1 + 4 + 4, buf, 1 << 20, C_TEXT, 0);
    }
}

/* The colour bar with its tick labels, which are kept at least a text line
 * apart (earlier candidates win). */
static void hm_draw_bar(canvas *c, const hm_geom *g, const hm_ticks *t) {
    int bx = g->bar_x, by = g->bar_y, bh = g->bar_h;
    for (int y = 0; y < bh; y++)
        fill_rect(c, bx, by + y, HM_BAR_W, 1, colormap(1 - (double)y / (bh - 1)));
    stroke_rect(c, bx - 1, by - 1, HM_BAR_W + 2, bh + 2, C_AXIS);
    int kept[HM_MAX_CTICKS], n_kept = 0;
    for (int i = 0; i < t->n; i++) {
        if (t->pos[i] != t->pos[i]) continue;
        int ty = by + (int)lround((1 - t->pos[i]) * (bh - 1));
        int clash = 0;
        for (int j = 0; j < n_kept; j++)
            if (abs(kept[j] - ty) < TEXT_H + 4) clash = 1;
        if (clash) continue;
        kept[n_kept++] = ty;
        fill_rect(c, bx + HM_BAR_W + 1, ty, 4, 1, C_AXIS);
        draw_text(c, bx + HM_BAR_W + 4 + 6, ty - TEXT_H / 2 + 1, t->label[i], g->bar_label_w,
                  C_TEXT, 0);
    }
}

/* Write a figure of n_panels heat maps to path (see plot.h). */
sk_status sk_heatmap_write_png(const char *path, int n_panels, const float *const *mats,
                               const int *rows, const int *cols, const char *const *titles,
                               const char *suptitle, double gamma, sk_error *err) {
    if (!path) return sk_error_set(err, SK_ERR_INVALID, "heatmap: NULL output path");
    if (n_panels < 1 || n_panels > HM_MAX_PANELS)
        return sk_error_set(err, SK_ERR_INVALID, "heatmap: %d panels (1..%d)", n_panels,
                            HM_MAX_PANELS);
    if (!mats || !rows || !cols)
        return sk_error_set(err, SK_ERR_INVALID, "heatmap: NULL matrix list or sizes");
    if (!(gamma >= 0) || !isfinite(gamma))
        return sk_error_set(err, SK_ERR_INVALID, "heatmap: gamma %g (0 = log, > 0 power)", gamma);
    hm_panel pn[HM_MAX_PANELS];
    for (int i = 0; i < n_panels; i++) {
        if (!mats[i]) return sk_error_set(err, SK_ERR_INVALID, "heatmap: panel %d has no matrix", i);
        if (rows[i] < 1 || rows[i] > HM_MAX_DIM || cols[i] < 1 || cols[i] > HM_MAX_DIM)
            return sk_error_set(err, SK_ERR_INVALID, "heatmap: panel %d is %dx%d (1..%d per side)",
                                i, rows[i], cols[i], HM_MAX_DIM);
    }

    /* the shared colour scale */
    double vmin = INFINITY, vmax = -INFINITY, minpos = INFINITY;
    for (int i = 0; i < n_panels; i++) {
        size_t n = (size_t)rows[i] * (size_t)cols[i];
        for (size_t j = 0; j < n; j++) {
            double v = mats[i][j];
            if (!isfinite(v)) continue;
            vmin = fmin(vmin, v);
            vmax = fmax(vmax, v);
            if (v > 0) minpos = fmin(minpos, v);
        }
    }
    hm_scale sc = {gamma == 0, 0, 1, gamma == 0 ? 1 : gamma};
    if (sc.log) {
        if (vmax > 0) {
            sc.hi = vmax;
            sc.lo = fmax(minpos, vmax * 1e-6);
            if (!(sc.lo < sc.hi)) sc.lo = sc.hi / 10;
        } else {
            sc.lo = 1e-6;
            sc.hi = 1;
        }
    } else if (vmin <= vmax && !(vmin >= 0 && vmax <= 1)) {
        sc.lo = vmin;
        sc.hi = vmax;
        if (!(sc.hi - sc.lo > fabs(sc.hi) * 1e-9)) { /* one value */
            double d = fmax(0.5, fabs(sc.hi) * 0.05);
            sc.lo -= d;
            sc.hi += d;
        }
    }
    hm_ticks ticks;
    hm_make_ticks(&sc, &ticks);
    int bar_label_w = 0;
    for (int i = 0; i < ticks.n; i++) {
        int w = text_width(ticks.label[i], 1 << 20);
        if (w > bar_label_w) bar_label_w = w;
    }

    hm_geom g;
    if (hm_fit(&g, n_panels, pn, rows, cols, suptitle && suptitle[0], bar_label_w))
        return sk_error_set(err, SK_ERR_INVALID, "heatmap: %d panels do not fit in %d pixels",
                            n_panels, HM_MAX_SIDE);

    canvas c;
    sk_status st = canvas_init(&c, g.W, g.H, err);
    if (st) return st;
    if (suptitle && suptitle[0])
        draw_text_centered(&c, g.W / 2, HM_MARGIN, suptitle, 10, g.W - 10, C_TEXT);
    for (int i = 0; i < n_panels; i++)
        hm_draw_panel(&c, &g, &sc, i, &pn[i], mats[i], rows[i], cols[i], titles ? titles[i] : NULL);
    hm_draw_bar(&c, &g, &ticks);
    st = canvas_write_png(&c, path, err);
    free(c.px);
    return st;
}
