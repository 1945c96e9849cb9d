/* server_http.c - `sinkllm serve`'s HTTP side: the libmicrohttpd daemon
 * (a thread per connection), routing, header checks, authentication,
 * connection limits, and sending JSON, SSE streams, the page and errors.
 * The only file that includes microhttpd.h.
 *
 * Error convention: MHD results. Every handler returns the enum MHD_Result
 * of the response it queued (MHD_NO drops the connection); errors of the
 * other modules (a srv_perr from server_request.c, an sk_status from
 * server_slots.c) are turned into responses here, each error a JSON body
 * {"error": {"message", "type", "param", "code"}}.
 *
 * Routes
 *   POST /v1/chat/completions, POST /v1/completions   (stream or not)
 *   GET  /v1/models, GET /health (never needs the key), GET /metrics
 *   GET  / and /index.html: the web chat page (tools/webui.c; never needs
 *        the key, the API calls it makes do)
 *   POST /tokenize {"content"}, POST /detokenize {"tokens"}, POST /v1/embeddings,
 *   POST /apply-template (a chat body rendered as the prompt text)
 *   POST /v1/sessions/{id}/save
 *   DELETE /v1/sessions/{id}
 * The request fields are listed in server_request.c, the slot and session
 * rules in server_slots.c, the extras in responses in server_reply.c.
 *
 * Generation runs in the connection's thread: for a non-streaming request
 * inside the access handler, for a streaming one inside the content-reader
 * callback, one token per call. Before each token the socket is polled, so
 * a client that hangs up frees its slot within one token. Non-streaming
 * and streaming responses also carry the header X-Prefill-Tokens.
 *
 * Connections are watched (see "connection watch" below): a deadline for
 * the headers, a minimum rate for the body, a per-address limit, and the
 * oldest connection still without a request closed to make room; the
 * inactivity timeout is --idle-timeout except while a request is handled. */
#include "server.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "server_reply.h"
#include "server_request.h"
#include "server_slots.h"
#include "webui.h"

struct sk_server {
    sk_server_config cfg;
    struct MHD_Daemon *d;
    MHD_socket listen_fd; /* returned by MHD_quiesce_daemon; closed by us */
    const sk_model *m;
    srv_parse_env env;    /* tokenizer, chat template, defaults: for the parsers */
    atomic_int loaded;
    int shut_down;
    atomic_ullong next_id;
    srv_pool pool;        /* slots, sessions, counters */
    /* the connection watch: every open connection, oldest first */
    pthread_mutex_t embed_mu; /* one /v1/embeddings request computes at a time */
    pthread_mutex_t conn_mu;
    pthread_cond_t conn_cv;   /* wakes the watch thread to stop */
    pthread_t watch;
    int watch_running, watch_stop;
    struct conn *conns, *conns_tail;
    unsigned conn_limit;      /* MHD_OPTION_CONNECTION_LIMIT */
    unsigned long long n_slow_closed, n_evicted; /* under conn_mu */
};

/* Constant-time comparison: the time depends only on the lengths. */
static int key_equal(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = (unsigned char)(na != nb);
    size_t n = na > nb ? na : nb;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < na ? (unsigned char)a[i] : 0;
        unsigned char y = i < nb ? (unsigned char)b[i] : 0;
        diff |= x ^ y;
    }
    return diff == 0;
}

/* ---- connection watch -------------------------------------------------- */

/* libmicrohttpd 0.9.75 closes a connection only after a silence of
 * MHD_OPTION_CONNECTION_TIMEOUT (every byte received restarts it), and it
 * refuses connections past its limit before the application hears of
 * them. So clients that send one header byte a second keep their
 * connections (and threads) for ever and lock everybody out, /health
 * included. It has no deadline for the headers; the watch adds one:
 *
 *   - the request line and headers must be in --header-timeout seconds
 *     after the connection opened, or after --idle-timeout plus that on a
 *     kept-alive connection (counted from the end of its previous reply);
 *   - the body must come at BODY_MIN_RATE bytes a second on average after
 *     a grace of --header-timeout (from the end of the headers);
 *   - when an address has more than --max-conn-per-ip connections, or all
 *     addresses together come within CONN_RESERVE of the daemon's limit,
 *     the oldest connection still waiting for its headers (a slow client
 *     or an idle kept-alive one: nothing is lost by closing it) is closed
 *     to make room, the newcomer itself when there is no other. Slow
 *     clients from one address (the attacker's and the victim's may be the
 *     same, 127.0.0.1 in the tests) cannot starve a well-behaved one: it
 *     sends its headers at once and the others are older.
 *
 * MHD cannot be asked to close a connection from another thread (in
 * thread-per-connection mode), so the watch shuts the socket down
 * (shutdown(2)); the connection's thread sees the end of the stream and
 * MHD cleans up as for a client that left. The records live in one list
 * under conn_mu. MHD reports MHD_CONNECTION_NOTIFY_CLOSED before it closes
 * the descriptor and the record leaves the list then, under the same lock,
 * so the watch never shuts down a descriptor reused by another connection;
 * the peer address is compared before the shutdown all the same.
 *
 * Timeouts of MHD itself (inactivity): --idle-timeout while a connection
 * waits for a request, receives one, or sends a finished reply; --timeout
 * + 30 s while its request is handled (queued, pre-filled, generated,
 * streamed: generation has its own deadline, --timeout, and must not be
 * cut by a quiet socket). */

#define BODY_MIN_RATE (16.0 * 1024) /* bytes per second, after the grace */
#define CONN_RESERVE 8              /* connections kept free for newcomers */
#define WATCH_TICK_MS 200

enum { CONN_HEAD, CONN_BODY, CONN_BUSY };

/* One open connection, from MHD_CONNECTION_NOTIFY_STARTED to _CLOSED
 * (its socket_context). Fields other than the links and the address are
 * under s->conn_mu. */
typedef struct conn {
    struct conn *prev, *next;
    int fd;
    struct sockaddr_storage addr; /* the client (compared with getpeername) */
    int phase;                    /* CONN_HEAD, CONN_BODY, CONN_BUSY */
    double since;                 /* when the phase began (ms, sk_now_ms) */
    double allow_ms;              /* CONN_HEAD: how long it may last */
    uint64_t body_bytes;          /* CONN_BODY: bytes of the body received */
    int closing;                  /* shut down by the watch */
    const char *cors;             /* --cors ORIGIN (NULL: none), for its responses */
} conn;

static int same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family) return 0;
    if (a->ss_family == AF_INET)
        return !memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                       &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr));
    if (a->ss_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
    return 0;
}

static int same_peer(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (!same_host(a, b)) return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_port == ((const struct sockaddr_in *)b)->sin_port;
    return ((const struct sockaddr_in6 *)a)->sin6_port == ((const struct sockaddr_in6 *)b)->sin6_port;
}

/* Close k's connection (conn_mu held). */
static void conn_shut_locked(conn *k) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    k->closing = 1;
    if (k->fd < 0 || getpeername(k->fd, (struct sockaddr *)&peer, &len) || !same_peer(&peer, &k->addr))
        return;
    shutdown(k->fd, SHUT_RDWR);
}

/* Close the oldest connection still waiting for its headers, among those
 * from host (all when NULL), other than spare. Returns 0, or -1 when there
 * is none (conn_mu held). */
static int conn_evict_locked(sk_server *s, const struct sockaddr_storage *host, const conn *spare) {
    conn *old = NULL;
    for (conn *k = s->conns; k; k = k->next)
        if (k != spare && !k->closing && k->phase == CONN_HEAD &&
            (!host || same_host(&k->addr, host)) && (!old || k->since < old->since))
            old = k;
    if (!old) return -1;
    conn_shut_locked(old);
    s->n_evicted++;
    return 0;
}

/* Make room for the newcomer k (conn_mu held). Past the per-address
 * limit, the oldest waiting connection from k's address goes, k itself
 * when it is the only one (the limit holds); near the daemon's limit, the
 * oldest waiting one other than k (when there is none, MHD's own limit
 * refuses newcomers). */
static void conn_admit_locked(sk_server *s, conn *k) {
    unsigned n_all = 0, n_host = 0;
    for (conn *x = s->conns; x; x = x->next) {
        if (x->closing) continue;
        n_all++;
        n_host += (unsigned)same_host(&x->addr, &k->addr);
    }
    unsigned per_ip = (unsigned)s->cfg.max_conn_per_ip;
    if (per_ip && n_host > per_ip && !conn_evict_locked(s, &k->addr, NULL)) n_all--;
    if (!k->closing && s->conn_limit > CONN_RESERVE && n_all > s->conn_limit - CONN_RESERVE)
        conn_evict_locked(s, NULL, k);
}

/* MHD_OPTION_NOTIFY_CONNECTION: keep the list of open connections. A
 * connection whose record cannot be allocated goes unwatched. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    sk_server *s = cls;
    conn *k = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (!k) return;
        pthread_mutex_lock(&s->conn_mu);
        if (k->prev) k->prev->next = k->next;
        else s->conns = k->next;
        if (k->next) k->next->prev = k->prev;
        else s->conns_tail = k->prev;
        pthread_mutex_unlock(&s->conn_mu);
        free(k);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!fi || !ai || !ai->client_addr) return;
    k = calloc(1, sizeof *k);
    if (!k) return;
    k->fd = fi->connect_fd;
    k->cors = s->cfg.cors_origin;
    size_t alen = ai->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                         : sizeof(struct sockaddr_in);
    memcpy(&k->addr, ai->client_addr, alen);
    k->phase = CONN_HEAD;
    k->since = sk_now_ms();
    k->allow_ms = s->cfg.header_timeout_s * 1e3;
    pthread_mutex_lock(&s->conn_mu);
    k->prev = s->conns_tail;
    if (s->conns_tail) s->conns_tail->next = k;
    else s->conns = k;
    s->conns_tail = k;
    conn_admit_locked(s, k);
    pthread_mutex_unlock(&s->conn_mu);
    *socket_context = k;
}

/* The record of connection c, or NULL when it is unwatched. */
static conn *conn_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* CORS (--cors ORIGIN): a request whose Origin is ORIGIN (any, for "*")
 * gets it back in Access-Control-Allow-Origin; other origins get nothing,
 * and the browser keeps the response from their pages. */
static void add_cors(struct MHD_Connection *c, struct MHD_Response *r) {
    const conn *k = conn_of(c);
    const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!k || !k->cors || !o || (strcmp(k->cors, "*") && strcmp(k->cors, o))) return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", strcmp(k->cors, "*") ? o : "*");
    MHD_add_response_header(r, "Vary", "Origin");
    MHD_add_response_header(r, "Access-Control-Expose-Headers", "X-Prefill-Tokens, Retry-After");
}

/* MHD_queue_response with the CORS headers */
static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r) {
    add_cors(c, r);
    return MHD_queue_response(c, status, r);
}

/* Move k to phase (CONN_HEAD: waiting for the next request of a
 * kept-alive connection). */
static void conn_phase(sk_server *s, conn *k, int phase) {
    if (!k) return;
    pthread_mutex_lock(&s->conn_mu);
    k->phase = phase;
    k->since = sk_now_ms();
    k->body_bytes = 0;
    k->allow_ms = (s->cfg.idle_timeout_s + s->cfg.header_timeout_s) * 1e3;
    pthread_mutex_unlock(&s->conn_mu);
}

static void conn_body(sk_server *s, conn *k, size_t n) {
    if (!k) return;
    pthread_mutex_lock(&s->conn_mu);
    k->body_bytes += n;
    pthread_mutex_unlock(&s->conn_mu);
}

/* MHD's inactivity timeout of c, restarted: a timeout set while it is 0
 * restarts the timer (microhttpd.h, MHD_CONNECTION_OPTION_TIMEOUT), one
 * changed from another value would count from the last byte. */
static void conn_timeout(struct MHD_Connection *c, double secs) {
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)secs);
}

static void *watch_main(void *arg) {
    sk_server *s = arg;
    double grace = s->cfg.header_timeout_s * 1e3;
    pthread_mutex_lock(&s->conn_mu);
    while (!s->watch_stop) {
        double now = sk_now_ms();
        for (conn *k = s->conns; k; k = k->next) {
            if (k->closing || k->phase == CONN_BUSY) continue;
            double allow = k->phase == CONN_HEAD ? k->allow_ms
                                                 : grace + (double)k->body_bytes / BODY_MIN_RATE * 1e3;
            if (now - k->since > allow) {
                conn_shut_locked(k);
                s->n_slow_closed++;
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WATCH_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->conn_cv, &s->conn_mu, &ts);
    }
    pthread_mutex_unlock(&s->conn_mu);
    return NULL;
}

/* ---- responses --------------------------------------------------------- */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 char *body, size_t len, const char *h1, const char *v1) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (h1) MHD_add_response_header(r, h1, v1);
    enum MHD_Result ret = queue(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Queue j (stolen) as a JSON body; an optional extra header. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j,
                                 const char *h1, const char *v1) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s) return MHD_NO;
    return send_text(c, status, "application/json", s, strlen(s), h1, v1);
}

/* Queue the web chat page (static, never copied); its scripts and styles
 * are inline and it may fetch only from this origin. */
static enum MHD_Result send_page(struct MHD_Connection *c) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sk_webui_html_len, (void *)sk_webui_html, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; script-src 'unsafe-inline'; "
                            "style-src 'unsafe-inline'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = queue(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(sk_server *s, struct MHD_Connection *c, unsigned status,
                                  const char *param, const char *h1, const char *v1,
                                  const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    srv_pool_count_error(&s->pool);
    json_t *j = srv_reply_error(type, param, msg);
    if (!j) return MHD_NO;
    return send_json(c, status, j, h1, v1);
}

/* The error a parser reported; a 503 asks the client to retry. */
static enum MHD_Result send_perr(sk_server *s, struct MHD_Connection *c, const srv_perr *e) {
    unsigned st = e->status ? e->status : 500;
    if (st == 503) return send_error(s, c, st, NULL, "Retry-After", "1", "%s", e->msg);
    return send_error(s, c, st, e->param[0] ? e->param : NULL, NULL, NULL, "%s", e->msg);
}

/* ---- generation -------------------------------------------------------- */

/* One generation request: the slot's generation plus what the response
 * needs (request id, socket, the stream's buffer). */
typedef struct job {
    srv_gen g;
    sk_server *s;
    int fd;
    int http11;              /* the client speaks HTTP/1.1 (may get a 1xx) */
    int replying;            /* the response is queued: MHD owns the socket's output */
    int probed;              /* the 100 Continue probe was sent */
    char id[48];
    long created;
    /* streaming */
    int phase;
    int64_t lp_sent;         /* logprobs entries [0, lp_sent) already sent */
    char *out;               /* (out_len) bytes of events; [0, out_pos) already sent */
    size_t out_len, out_pos, out_cap;
} job;

/* Has the client hung up? Asked before each token, between pre-fill
 * chunks and while queued; arg is the job.
 *
 * The end of the client's stream (a FIN: POLLRDHUP, recv() returning 0)
 * does not say: HTTP/1.1 lets a client shut down its sending side after
 * the request (shutdown(SHUT_WR)) and still read the reply, and a client
 * that closed its socket for good sends the same FIN. Only writing tells
 * them apart: a closed socket answers data with an RST, after which
 * poll() reports POLLERR/POLLHUP; a half-closed one takes the data. So:
 *   - POLLERR, POLLHUP (an RST came, or our side is shut): gone.
 *   - FIN once the response is queued (a stream): not gone by itself; the
 *     stream writes each token, and when the client has really left the
 *     next write draws the RST (or fails, and MHD drops the stream).
 *   - FIN before the response, from an HTTP/1.1 client: once, write an
 *     interim "HTTP/1.1 100 Continue" straight onto the socket as a probe
 *     (RFC 9110 15.2: a client must parse 1xx responses it did not ask
 *     for; 100 is the one code every client library skips, 102 and 103
 *     are not). A half-closed client reads past it to the reply; a closed
 *     one answers it with an RST, seen at the next check, one token (or
 *     pre-fill chunk) later. MHD writes nothing while the handler runs,
 *     so the probe cannot land inside its output.
 *   - FIN from an HTTP/1.0 client (which must not get a 1xx): gone.
 * A client that hangs up before the response without the kernel sending
 * anything (no FIN, e.g. a dead host) is noticed by neither; the request's
 * deadline (--timeout) bounds it. */
static int peer_gone(void *arg) {
    job *j = arg;
    if (j->fd < 0) return 0;
    struct pollfd p = {.fd = j->fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return 1;
    int eof = (p.revents & POLLRDHUP) != 0;
    if (!eof && (p.revents & POLLIN)) {
        char c;
        eof = recv(j->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
    }
    if (!eof || j->replying || j->probed) return 0;
    if (!j->http11) return 1;
    static const char probe[] = "HTTP/1.1 100 Continue\r\n\r\n";
    j->probed = 1;
    /* a short write would leave half a status line: drop the connection */
    return send(j->fd, probe, sizeof probe - 1, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)(sizeof probe - 1);
}

static void job_free(job *j) {
    if (!j) return;
    srv_gen_free(&j->g);
    free(j->out);
    free(j);
}

/* Append raw bytes to the stream buffer. */
static int out_bytes(job *j, const char *p, size_t n) {
    return srv_append(&j->out, &j->out_len, &j->out_cap, p, n) ? -1 : 0;
}

/* Append "data: <json>\n\n" (ev stolen) to the stream buffer. */
static int out_event(job *j, json_t *ev) {
    char *s = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!s) return -1;
    int rc = out_bytes(j, "data: ", 6) || out_bytes(j, s, strlen(s)) || out_bytes(j, "\n\n", 2);
    free(s);
    return rc ? -1 : 0;
}

/* A chunk of text [g->sent, g->sent + len) with the logprobs of its tokens. */
static int out_chunk(job *j, const char *text, size_t len, const char *finish, int role) {
    srv_gen *g = &j->g;
    int64_t lp0 = j->lp_sent, lp1 = text ? srv_logprobs_upto(g, lp0, g->sent + len) : lp0;
    j->lp_sent = lp1;
    return out_event(j, srv_reply_chunk(g, j->id, j->created, text, len, finish, role, lp0, lp1));
}

/* A reply that calls tools, streamed as OpenAI streams it: per call a
 * delta with its id, type and name (arguments ""), then one with its
 * arguments. calls is stolen. */
static int out_tool_calls(job *j, json_t *calls) {
    srv_gen *g = &j->g;
    size_t k;
    json_t *c;
    int rc = 0;
    json_array_foreach(calls, k, c) {
        json_t *fn = json_object_get(c, "function");
        json_t *head = json_pack("[{s:I,s:O,s:s,s:{s:O,s:s}}]", "index", (json_int_t)k, "id", json_object_get(c, "id"),
                                 "type", "function", "function", "name", json_object_get(fn, "name"), "arguments", "");
        json_t *args = json_pack("[{s:I,s:{s:O}}]", "index", (json_int_t)k, "function", "arguments",
                                 json_object_get(fn, "arguments"));
        if (!head || !args || out_event(j, srv_reply_tool_chunk(g, j->id, j->created, head)) ||
            out_event(j, srv_reply_tool_chunk(g, j->id, j->created, args))) {
            rc = -1;
            break;
        }
    }
    json_decref(calls);
    return rc;
}

/* The events after a choice's last token: the rest of its text (or its
 * content and tool calls), the error of a failed generation, its finish
 * chunk. */
static int out_choice_end(job *j) {
    srv_gen *g = &j->g;
    size_t rest = g->text_len - g->sent;
    json_t *calls = NULL;
    int n_calls = 0;
    if (g->r.chat && g->r.tools.mode && !g->failed) {
        char prefix[80];
        srv_reply_call_prefix(g, j->id, prefix, sizeof prefix);
        calls = srv_tools_read_reply(&g->r.tools, g->text + g->sent, rest, prefix, &rest, &n_calls);
        if (n_calls < 0) return -1;
    }
    if (rest > 0 && out_chunk(j, g->text + g->sent, rest, NULL, 0)) {
        json_decref(calls);
        return -1;
    }
    g->sent = g->text_len;
    if (calls && out_tool_calls(j, calls)) return -1;
    if (g->failed && out_event(j, srv_reply_error("server_error", NULL, g->error.msg))) return -1;
    return out_chunk(j, NULL, 0, n_calls > 0 && !strcmp(g->finish, "stop") ? "tool_calls" : g->finish, 0);
}

/* The events that end the stream: the usage, [DONE]. */
static int out_stream_end(job *j) {
    srv_gen *g = &j->g;
    if (g->r.include_usage && out_event(j, srv_reply_usage_chunk(g, j->id, j->created))) return -1;
    static const char done[] = "data: [DONE]\n\n";
    return out_bytes(j, done, sizeof done - 1);
}

/* After choice g->choice: is there another to generate? A failed, cancelled
 * or timed-out generation ends the request there. */
static int more_choices(const srv_gen *g) {
    return !g->failed && !g->cancelled && !g->timed_out && g->choice + 1 < srv_gen_n_choices(g);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    job *j = cls;
    srv_gen *g = &j->g;
    while (j->out_pos == j->out_len) {
        j->out_pos = j->out_len = 0;
        if (j->phase == 0) {
            j->phase = 1;
            if (g->r.chat && out_chunk(j, "", 0, NULL, 1)) return MHD_CONTENT_READER_END_WITH_ERROR;
        } else if (j->phase == 1) {
            if (!g->finished) {
                srv_gen_step(g);
                if (g->cancelled && !j->s->pool.stopping) return MHD_CONTENT_READER_END_WITH_ERROR;
                size_t upto = srv_gen_deliverable(g);
                if (!g->finished && upto > g->sent) {
                    if (out_chunk(j, g->text + g->sent, upto - g->sent, NULL, 0))
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                    g->sent = upto;
                }
                /* the held text is never more than the longest stop string */
                if (g->sent > 65536 && g->sent == g->text_len) {
                    /* logprobs entries not yet sent (a token whose bytes are still
                     * pending in the detokenizer) move to the front */
                    int64_t k = 0;
                    for (int64_t i = j->lp_sent; i < g->n_lp; i++, k++) {
                        g->lp[k] = g->lp[i];
                        g->lp[k].offset = g->lp[k].offset > g->text_len ? g->lp[k].offset - g->text_len : 0;
                    }
                    g->n_lp = k;
                    j->lp_sent = 0;
                    g->sent = g->text_len = 0;
                }
                continue;
            }
            if (out_choice_end(j)) return MHD_CONTENT_READER_END_WITH_ERROR;
            if (more_choices(g)) {
                /* n > 1 or a list of prompts: the next choice, its own index */
                sk_error err = {0};
                if (srv_gen_next_choice(g, &err)) {
                    g->failed = 1;
                    g->error = err;
                    if (out_event(j, srv_reply_error("server_error", NULL, err.msg)))
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                } else {
                    j->lp_sent = 0;
                    if (g->r.chat && out_chunk(j, "", 0, NULL, 1)) return MHD_CONTENT_READER_END_WITH_ERROR;
                    continue;
                }
            }
            if (out_stream_end(j)) return MHD_CONTENT_READER_END_WITH_ERROR;
            j->phase = 2;
            srv_gen_release(g);
        } else {
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
    }
    size_t n = j->out_len - j->out_pos;
    if (n > max) n = max;
    memcpy(buf, j->out + j->out_pos, n);
    j->out_pos += n;
    return (ssize_t)n;
}

/* MHD frees the stream; a job it drops unfinished lost its client (a failed
 * write can notice the hang-up before peer_gone does) */
static void stream_free(void *cls) {
    job *j = cls;
    if (j && !j->g.finished && !atomic_load(&j->s->pool.stopping)) j->g.cancelled = 1;
    job_free(j);
}

/* Parse, claim a slot, pre-fill, set up the sampler. Returns 0, or -1 with
 * e filled (the status to answer with). */
static int job_start(job *j, json_t *body, int chat, const char *hdr_session, srv_perr *e) {
    sk_server *s = j->s;
    if (srv_parse_generate(&s->env, body, chat, hdr_session, &j->g.r, e)) return -1;
    sk_error err = {0};
    sk_status st = srv_gen_acquire(&j->g, &s->pool, &err);
    if (st) {
        e->status = st == SK_ERR_FULL ? 503 : 409;
        snprintf(e->param, sizeof e->param, "%s", st == SK_ERR_FULL ? "" : "session_id");
    } else if ((st = srv_gen_prefill(&j->g, &err))) {
        /* a pre-fill cut short (deadline, shutdown, hang-up) is not the
         * request's fault */
        int cut = j->g.timed_out || j->g.cancelled;
        e->status = st == SK_ERR_NOMEM ? 500 : cut ? 503 : 400;
        snprintf(e->param, sizeof e->param, "%s", st == SK_ERR_NOMEM || cut ? "" : "messages");
    } else if ((st = srv_gen_sampler(&j->g, &err))) {
        e->status = st == SK_ERR_NOMEM ? 500 : 400;
        snprintf(e->param, sizeof e->param, "%s", st == SK_ERR_NOMEM ? "" : "temperature");
    }
    if (!st) return 0;
    snprintf(e->msg, sizeof e->msg, "%s", err.msg);
    return -1;
}

/* POST /v1/chat/completions and /v1/completions. */
static enum MHD_Result handle_generate(sk_server *s, struct MHD_Connection *c, json_t *body,
                                       int chat, int http11, int *streaming) {
    srv_perr e = {0};
    job *j = calloc(1, sizeof *j);
    if (!j) return send_error(s, c, 500, NULL, NULL, NULL, "out of memory");
    j->s = s;
    j->g.deadline = sk_now_ms() + s->cfg.timeout_s * 1e3;
    j->created = (long)time(NULL);
    snprintf(j->id, sizeof j->id, "%s-%llx%04x", chat ? "chatcmpl" : "cmpl",
             (unsigned long long)atomic_fetch_add(&s->next_id, 1), (unsigned)(getpid() & 0xffff));
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    j->http11 = http11;
    j->g.gone = peer_gone;
    j->g.gone_arg = j;
    const char *hs = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Session-Id");
    srv_pool_count_request(&s->pool);
    if (job_start(j, body, chat, hs, &e)) {
        job_free(j);
        return send_perr(s, c, &e);
    }
    srv_gen *g = &j->g;
    char pre[32];
    snprintf(pre, sizeof pre, "%lld", (long long)g->n_prefill);
    if (g->r.stream) {
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, j, stream_free);
        if (!resp) {
            job_free(j);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Prefill-Tokens", pre);
        j->replying = 1;
        *streaming = 1;
        enum MHD_Result ret = queue(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    /* n > 1, a list of prompts: the choices one after the other, each
     * prompt's from its cache; a timed-out request answers those it has */
    json_t *choices = json_array();
    for (int k = 0; k < srv_gen_n_choices(g) && !g->timed_out; k++) {
        sk_error err = {0};
        if (k > 0 && srv_gen_next_choice(g, &err)) {
            g->failed = 1;
            g->error = err;
        }
        while (!g->finished && !g->failed) srv_gen_step(g);
        if (g->cancelled && !s->pool.stopping) {
            json_decref(choices);
            job_free(j);
            return MHD_NO; /* the client is gone */
        }
        if (g->failed) {
            snprintf(e.msg, sizeof e.msg, "%s", g->error.msg);
            json_decref(choices);
            job_free(j);
            return send_error(s, c, 500, NULL, NULL, NULL, "%s", e.msg);
        }
        json_array_append_new(choices, srv_reply_choice(g, j->id));
    }
    json_t *resp = srv_reply_completion(g, j->id, j->created, choices);
    job_free(j);
    if (!resp) return send_error(s, c, 500, NULL, NULL, NULL, "cannot build the response");
    return send_json(c, 200, resp, "X-Prefill-Tokens", pre);
}

/* ---- other routes ------------------------------------------------------ */

/* base64 (RFC 4648, padded) of n bytes; malloc'ed, NUL-terminated */
static char *base64(const unsigned char *p, size_t n) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(4 * ((n + 2) / 3) + 1), *q = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *q++ = a[v >> 18 & 63];
        *q++ = a[v >> 12 & 63];
        *q++ = i + 1 < n ? a[v >> 6 & 63] : '=';
        *q++ = i + 2 < n ? a[v & 63] : '=';
    }
    *q = 0;
    return o;
}

/* POST /v1/embeddings: each input through a fresh dense context of its
 * own length, the mean of the final normed hidden states, L2-normalized
 * (llama.cpp's mean pooling, as llama-server's /v1/embeddings returns it).
 * One request computes at a time, beside the generation slots. */
static enum MHD_Result handle_embeddings(sk_server *s, struct MHD_Connection *c, json_t *body) {
    srv_perr e = {0};
    srv_embed_req r;
    if (srv_parse_embeddings(&s->env, body, &r, &e)) {
        srv_embed_req_free(&r);
        return send_perr(s, c, &e);
    }
    int64_t longest = 0, total = 0;
    for (int i = 0; i < r.n; i++) {
        longest = r.n_ids[i] > longest ? r.n_ids[i] : longest;
        total += r.n_ids[i];
    }
    sk_context_params cp;
    sk_context_params_default(&cp);
    cp.n_threads = s->cfg.n_threads;
    cp.n_batch = s->cfg.n_batch;
    cp.cache.policy = SK_CACHE_DENSE;
    cp.cache.n_ctx = (int)longest;
    size_t d = (size_t)sk_model_hparams(s->m)->n_embd;
    float *vec = malloc(sizeof(float) * d);
    json_t *data = json_array();
    sk_error err = {0};
    sk_context *ctx = NULL;
    pthread_mutex_lock(&s->embed_mu);
    sk_status st = vec ? sk_context_new(s->m, &cp, &ctx, &err) : sk_error_set(&err, SK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < r.n && !st; i++) {
        sk_context_reset(ctx);
        st = sk_decode(ctx, r.ids[i], r.n_ids[i], &err);
        if (!st) st = sk_context_embedding(ctx, 1, vec, &err);
        if (st) break;
        json_t *emb;
        if (r.base64) {
            char *b = base64((const unsigned char *)vec, sizeof(float) * d); /* float32, little-endian */
            emb = b ? json_string(b) : NULL;
            free(b);
        } else {
            emb = json_array();
            for (size_t j = 0; j < d; j++) json_array_append_new(emb, json_real(vec[j]));
        }
        json_array_append_new(data, json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", i, "embedding", emb));
    }
    pthread_mutex_unlock(&s->embed_mu);
    sk_context_free(ctx);
    free(vec);
    srv_embed_req_free(&r);
    if (st) {
        json_decref(data);
        return send_error(s, c, 500, NULL, NULL, NULL, "embeddings: %s", err.msg);
    }
    return send_json(c, 200, json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model",
                                       s->cfg.model_id, "usage", "prompt_tokens", (json_int_t)total,
                                       "total_tokens", (json_int_t)total), NULL, NULL);
}

static enum MHD_Result handle_tokenize(sk_server *s, struct MHD_Connection *c, json_t *body) {
    srv_perr e = {0};
    const char *t;
    size_t len;
    int add_special, parse_special;
    if (srv_parse_tokenize(body, &t, &len, &add_special, &parse_special, &e))
        return send_perr(s, c, &e);
    int64_t need = 0;
    sk_error err = {0};
    if (sk_tokenize(s->env.tok, t, len, add_special, parse_special, NULL, 0, &need, &err))
        return send_error(s, c, 400, "content", NULL, NULL, "%s", err.msg);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(need ? need : 1));
    if (!ids) return send_error(s, c, 500, NULL, NULL, NULL, "out of memory");
    if (sk_tokenize(s->env.tok, t, len, add_special, parse_special, ids, need, &need, &err)) {
        free(ids);
        return send_error(s, c, 400, "content", NULL, NULL, "%s", err.msg);
    }
    json_t *arr = json_array();
    for (int64_t i = 0; i < need; i++) json_array_append_new(arr, json_integer(ids[i]));
    free(ids);
    return send_json(c, 200, json_pack("{s:o}", "tokens", arr), NULL, NULL);
}

/* ids[0, n) as text, special tokens written out (malloc'ed, *len bytes,
 * NUL-terminated), or NULL when memory runs out. */
static char *detok_text(sk_server *s, const int32_t *ids, size_t n, size_t *len) {
    size_t cap = 64 + n * 16;
    char *outp = malloc(cap);
    *len = 0;
    if (!outp) return NULL;
    sk_detok dt;
    sk_detok_init(&dt);
    char piece[512];
    for (size_t i = 0; i <= n; i++) {
        size_t w = i < n ? sk_detok_push(&dt, s->env.tok, ids[i], 1, piece, sizeof piece)
                         : sk_detok_flush(&dt, piece, sizeof piece);
        if (*len + w + 1 > cap) {
            while (*len + w + 1 > cap) cap *= 2;
            char *nb = realloc(outp, cap);
            if (!nb) {
                free(outp);
                return NULL;
            }
            outp = nb;
        }
        memcpy(outp + *len, piece, w);
        *len += w;
    }
    outp[*len] = 0;
    return outp;
}

static enum MHD_Result handle_detokenize(sk_server *s, struct MHD_Connection *c, json_t *body) {
    srv_perr e = {0};
    int32_t *ids;
    size_t n, len;
    if (srv_parse_detokenize(&s->env, body, &ids, &n, &e)) return send_perr(s, c, &e);
    char *outp = detok_text(s, ids, n, &len);
    free(ids);
    if (!outp) return send_error(s, c, 500, NULL, NULL, NULL, "out of memory");
    json_t *r = json_pack("{s:s%}", "content", outp, len);
    free(outp);
    if (!r) return send_error(s, c, 500, NULL, NULL, NULL, "cannot encode the text");
    return send_json(c, 200, r, NULL, NULL);
}

/* POST /apply-template (llama-server's): a chat body's messages (and
 * tools) rendered by the model's chat template with the generation
 * prompt, as text: {"prompt"}. Nothing is generated. */
static enum MHD_Result handle_template(sk_server *s, struct MHD_Connection *c, json_t *body) {
    srv_perr e = {0};
    srv_gen_req r = {0};
    if (srv_parse_generate(&s->env, body, 1, NULL, &r, &e)) {
        srv_gen_req_free(&r);
        return send_perr(s, c, &e);
    }
    size_t len;
    char *text = detok_text(s, r.prompt, (size_t)r.n_prompt, &len);
    srv_gen_req_free(&r);
    if (!text) return send_error(s, c, 500, NULL, NULL, NULL, "out of memory");
    json_t *out = json_pack("{s:s%}", "prompt", text, len);
    free(text);
    if (!out) return send_error(s, c, 500, NULL, NULL, NULL, "cannot encode the text");
    return send_json(c, 200, out, NULL, NULL);
}

/* GET /v1/models (the list) or /v1/models/ID (one, 404 for another id) */
static enum MHD_Result handle_models(sk_server *s, struct MHD_Connection *c, const char *id) {
    const sk_hparams *hp = sk_model_hparams(s->m);
    json_t *model = json_pack("{s:s,s:s,s:I,s:s,s:{s:s,s:I,s:I,s:s,s:s,s:i,s:i}}", "id",
                              s->cfg.model_id, "object", "model", "created", (json_int_t)0,
                              "owned_by", "sinkllm", "meta", "desc", sk_model_desc(s->m),
                              "n_params", (json_int_t)sk_model_n_params(s->m), "n_vocab",
                              (json_int_t)hp->n_vocab, "chat_template", sk_chat_kind_name(s->env.kind),
                              "cache", sk_cache_policy_name(s->cfg.cache.policy), "sinks",
                              s->cfg.cache.n_sinks, "window", s->cfg.cache.n_window);
    if (id) {
        if (strcmp(id, s->cfg.model_id)) {
            json_decref(model);
            return send_error(s, c, 404, "model", NULL, NULL, "no model '%s' (this server has '%s')", id,
                              s->cfg.model_id);
        }
        return send_json(c, 200, model, NULL, NULL);
    }
    return send_json(c, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model), NULL, NULL);
}

static enum MHD_Result handle_metrics(sk_server *s, struct MHD_Connection *c) {
    srv_metrics m;
    srv_pool_metrics(&s->pool, &m);
    pthread_mutex_lock(&s->conn_mu);
    unsigned long long n_slow = s->n_slow_closed, n_evicted = s->n_evicted;
    pthread_mutex_unlock(&s->conn_mu);
    char *buf = NULL;
    int n = asprintf(
        &buf,
        "# HELP sinkllm_requests_total Generation requests received.\n"
        "# TYPE sinkllm_requests_total counter\nsinkllm_requests_total %llu\n"
        "# HELP sinkllm_request_errors_total Requests answered with an error status.\n"
        "# TYPE sinkllm_request_errors_total counter\nsinkllm_request_errors_total %llu\n"
        "# HELP sinkllm_tokens_generated_total Tokens generated.\n"
        "# TYPE sinkllm_tokens_generated_total counter\nsinkllm_tokens_generated_total %llu\n"
        "# HELP sinkllm_prompt_tokens_total Prompt tokens of all requests.\n"
        "# TYPE sinkllm_prompt_tokens_total counter\nsinkllm_prompt_tokens_total %llu\n"
        "# HELP sinkllm_prefill_tokens_total Prompt tokens actually pre-filled (not reused).\n"
        "# TYPE sinkllm_prefill_tokens_total counter\nsinkllm_prefill_tokens_total %llu\n"
        "# HELP sinkllm_evicted_tokens_total Tokens evicted from the rolling windows.\n"
        "# TYPE sinkllm_evicted_tokens_total counter\nsinkllm_evicted_tokens_total %llu\n"
        "# HELP sinkllm_disconnects_total Generations stopped because the client left.\n"
        "# TYPE sinkllm_disconnects_total counter\nsinkllm_disconnects_total %llu\n"
        "# HELP sinkllm_tokens_per_second Decode speed of the last finished generation.\n"
        "# TYPE sinkllm_tokens_per_second gauge\nsinkllm_tokens_per_second %.3f\n"
        "# HELP sinkllm_active_sessions Named sessions held in slots.\n"
        "# TYPE sinkllm_active_sessions gauge\nsinkllm_active_sessions %d\n"
        "# HELP sinkllm_slots_busy Slots generating now.\n"
        "# TYPE sinkllm_slots_busy gauge\nsinkllm_slots_busy %d\n"
        "# HELP sinkllm_slots_total Slots configured.\n"
        "# TYPE sinkllm_slots_total gauge\nsinkllm_slots_total %d\n"
        "# HELP sinkllm_queue_depth Requests waiting for a slot.\n"
        "# TYPE sinkllm_queue_depth gauge\nsinkllm_queue_depth %d\n"
        "# HELP sinkllm_slow_connections_closed_total Connections closed for sending their "
        "headers or body too slowly (--header-timeout).\n"
        "# TYPE sinkllm_slow_connections_closed_total counter\n"
        "sinkllm_slow_connections_closed_total %llu\n"
        "# HELP sinkllm_connections_evicted_total Connections without a request closed to "
        "make room for a newcomer (--max-conn-per-ip, connection limit).\n"
        "# TYPE sinkllm_connections_evicted_total counter\nsinkllm_connections_evicted_total %llu\n",
        (unsigned long long)m.requests, (unsigned long long)m.errors,
        (unsigned long long)m.gen_tokens, (unsigned long long)m.prompt_tokens,
        (unsigned long long)m.prefill_tokens, (unsigned long long)m.evicted,
        (unsigned long long)m.disconnects, m.last_tps, m.sessions, m.busy, m.n_slots, m.waiting,
        n_slow, n_evicted);
    if (n >= 0 && m.has_store) { /* the session store's totals */
        const srv_store_stats *t = &m.store;
        char *more = NULL;
        int k = asprintf(
            &more,
            "%s# HELP sinkllm_stored_sessions Sessions in the session store (-1: unreachable).\n"
            "# TYPE sinkllm_stored_sessions gauge\nsinkllm_stored_sessions %lld\n"
            "# HELP sinkllm_stored_session_bytes Bytes of the sessions in the store (-1: unreachable).\n"
            "# TYPE sinkllm_stored_session_bytes gauge\nsinkllm_stored_session_bytes %lld\n"
            "# HELP sinkllm_session_saves_total Sessions saved to the store.\n"
            "# TYPE sinkllm_session_saves_total counter\nsinkllm_session_saves_total %llu\n"
            "# HELP sinkllm_session_save_errors_total Saves that failed (store unreachable, disk full).\n"
            "# TYPE sinkllm_session_save_errors_total counter\nsinkllm_session_save_errors_total %llu\n"
            "# HELP sinkllm_session_loads_total Sessions restored from the store.\n"
            "# TYPE sinkllm_session_loads_total counter\nsinkllm_session_loads_total %llu\n"
            "# HELP sinkllm_session_load_errors_total Stored sessions that could not be restored.\n"
            "# TYPE sinkllm_session_load_errors_total counter\nsinkllm_session_load_errors_total %llu\n"
            "# HELP sinkllm_sessions_expired_total Stored sessions deleted by --session-ttl.\n"
            "# TYPE sinkllm_sessions_expired_total counter\nsinkllm_sessions_expired_total %llu\n"
            "# HELP sinkllm_sessions_capped_total Stored sessions deleted by --session-max (least recently used).\n"
            "# TYPE sinkllm_sessions_capped_total counter\nsinkllm_sessions_capped_total %llu\n",
            buf, (long long)t->sessions, (long long)t->bytes, (unsigned long long)t->saves,
            (unsigned long long)t->save_errors, (unsigned long long)t->loads, (unsigned long long)t->load_errors,
            (unsigned long long)t->expired, (unsigned long long)t->capped);
        free(buf);
        buf = more;
        n = k;
    }
    if (n >= 0) { /* the forward passes: sizes and times (histograms) */
        const srv_batch_stats *b = &m.batch;
        static const char *const le_rows[SRV_BATCH_HIST] = {"1", "2", "4", "8", "16", "64", "256", "+Inf"};
        static const char *const le_ms[SRV_BATCH_HIST] = {"5", "10", "20", "50", "100", "250", "1000", "+Inf"};
        char h1[1024], h2[1024];
        size_t o1 = 0, o2 = 0;
        uint64_t c1 = 0, c2 = 0;
        for (int i = 0; i < SRV_BATCH_HIST; i++) {
            c1 += b->hist_tokens[i];
            c2 += b->hist_ms[i];
            o1 += (size_t)snprintf(h1 + o1, sizeof h1 - o1, "sinkllm_batch_rows_bucket{le=\"%s\"} %llu\n", le_rows[i],
                                   (unsigned long long)c1);
            o2 += (size_t)snprintf(h2 + o2, sizeof h2 - o2, "sinkllm_batch_step_ms_bucket{le=\"%s\"} %llu\n", le_ms[i],
                                   (unsigned long long)c2);
        }
        char *more = NULL;
        int k = asprintf(
            &more,
            "%s# HELP sinkllm_batch_rows Rows (tokens of all slots) per forward pass.\n"
            "# TYPE sinkllm_batch_rows histogram\n%ssinkllm_batch_rows_sum %llu\nsinkllm_batch_rows_count %llu\n"
            "# HELP sinkllm_batch_step_ms Time of one forward pass in milliseconds.\n"
            "# TYPE sinkllm_batch_step_ms histogram\n%ssinkllm_batch_step_ms_sum %.3f\nsinkllm_batch_step_ms_count %llu\n"
            "# HELP sinkllm_batch_seqs_total Slots fed, summed over the passes.\n"
            "# TYPE sinkllm_batch_seqs_total counter\nsinkllm_batch_seqs_total %llu\n"
            "# HELP sinkllm_batch_waiting Slots waiting for the next pass.\n"
            "# TYPE sinkllm_batch_waiting gauge\nsinkllm_batch_waiting %d\n",
            buf, h1, (unsigned long long)b->tokens, (unsigned long long)b->passes, h2, b->ms_sum,
            (unsigned long long)b->passes, (unsigned long long)b->seqs, b->waiting);
        free(buf);
        buf = more;
        n = k;
    }
    if (n < 0) return send_error(s, c, 500, NULL, NULL, NULL, "out of memory");
    return send_text(c, 200, "text/plain; version=0.0.4", buf, (size_t)n, NULL, NULL);
}

/* DELETE /v1/sessions/ID: forget the session (its slot and its file). */
static enum MHD_Result handle_delete(sk_server *s, struct MHD_Connection *c, const char *id) {
    srv_perr e = {0};
    if (srv_check_session_id(id, &e)) return send_perr(s, c, &e);
    sk_error err = {0};
    srv_save_state state;
    if (srv_pool_delete_session(&s->pool, id, &state, &err))
        return send_error(s, c, 500, NULL, NULL, NULL, "cannot delete session: %s", err.msg);
    switch (state) {
    case SRV_SAVE_DONE:
        return send_json(c, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1), NULL, NULL);
    case SRV_SAVE_BUSY:
        return send_error(s, c, 409, "session_id", NULL, NULL, "session '%s' is generating", id);
    default: return send_error(s, c, 404, "session_id", NULL, NULL, "no session '%s'", id);
    }
}

static enum MHD_Result handle_save(sk_server *s, struct MHD_Connection *c, const char *id) {
    srv_perr e = {0};
    if (srv_check_session_id(id, &e)) return send_perr(s, c, &e);
    if (!s->cfg.session_dir && !s->cfg.session_store)
        return send_error(s, c, 400, NULL, NULL, NULL, "the server runs without --session-dir or --session-store");
    sk_error err = {0};
    srv_save_state state;
    int64_t n;
    if (srv_pool_save_session(&s->pool, id, &state, &n, &err))
        return send_error(s, c, 500, NULL, NULL, NULL, "cannot save session: %s", err.msg);
    switch (state) {
    case SRV_SAVE_DONE:
        return send_json(c, 200, json_pack("{s:s,s:b,s:I}", "id", id, "saved", 1, "tokens",
                                           (json_int_t)n), NULL, NULL);
    case SRV_SAVE_ON_DISK:
        return send_json(c, 200, json_pack("{s:s,s:b}", "id", id, "saved", 1), NULL, NULL);
    case SRV_SAVE_BUSY:
        return send_error(s, c, 409, "session_id", NULL, NULL, "session '%s' is generating", id);
    default: return send_error(s, c, 404, "session_id", NULL, NULL, "no session '%s'", id);
    }
}

/* ---- request plumbing -------------------------------------------------- */

typedef struct req {
    int route;
    char *body;
    size_t len, cap;
    int too_big;
    int http11;
    conn *k;                 /* the connection's watch record (NULL: unwatched) */
    char session_save[80];
} req;

enum { R_NONE, R_HEALTH, R_METRICS, R_MODELS, R_MODEL, R_EMBED, R_CHAT, R_COMPL, R_TOKENIZE, R_DETOKENIZE, R_SAVE,
       R_PAGE, R_DELETE, R_TEMPLATE };

static int route_of(const char *url, int *is_post, char *save_id) {
    *is_post = 1;
    if (!strcmp(url, "/health")) return *is_post = 0, R_HEALTH;
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) return *is_post = 0, R_PAGE;
    if (!strcmp(url, "/metrics")) return *is_post = 0, R_METRICS;
    if (!strcmp(url, "/v1/models")) return *is_post = 0, R_MODELS;
    if (!strncmp(url, "/v1/models/", 11) && url[11] && strlen(url + 11) < 80) {
        memcpy(save_id, url + 11, strlen(url + 11) + 1); /* the model id */
        return *is_post = 0, R_MODEL;
    }
    if (!strcmp(url, "/v1/chat/completions")) return R_CHAT;
    if (!strcmp(url, "/v1/completions")) return R_COMPL;
    if (!strcmp(url, "/v1/embeddings")) return R_EMBED;
    if (!strcmp(url, "/tokenize")) return R_TOKENIZE;
    if (!strcmp(url, "/detokenize")) return R_DETOKENIZE;
    if (!strcmp(url, "/apply-template")) return R_TEMPLATE;
    const char *pfx = "/v1/sessions/", *sfx = "/save";
    size_t lp = strlen(pfx), lu = strlen(url), ls = strlen(sfx);
    if (lu > lp + ls && !strncmp(url, pfx, lp) && !strcmp(url + lu - ls, sfx) && lu - lp - ls < 80) {
        memcpy(save_id, url + lp, lu - lp - ls);
        save_id[lu - lp - ls] = 0;
        return R_SAVE;
    }
    if (lu > lp && !strncmp(url, pfx, lp) && !strchr(url + lp, '/') && lu - lp < 80) {
        memcpy(save_id, url + lp, lu - lp + 1); /* DELETE /v1/sessions/ID */
        return *is_post = 2, R_DELETE;
    }
    return R_NONE;
}

typedef struct hdr_count {
    int content_length, host, transfer_encoding;
} hdr_count;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
    (void)kind;
    (void)value;
    hdr_count *h = cls;
    if (!strcasecmp(key, "Content-Length")) h->content_length++;
    else if (!strcasecmp(key, "Host")) h->host++;
    else if (!strcasecmp(key, "Transfer-Encoding")) h->transfer_encoding++;
    return MHD_YES;
}

static int authorized(sk_server *s, struct MHD_Connection *c) {
    if (!s->cfg.api_key || !s->cfg.api_key[0]) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    h += 7;
    while (*h == ' ') h++;
    return key_equal(h, s->cfg.api_key);
}

/* Checks done once the headers are in; returns MHD_YES to go on reading
 * the body (*handled = 0) or the result of a queued error. */
static enum MHD_Result check_headers(sk_server *s, struct MHD_Connection *c, const char *url,
                                     const char *method, req *rq, int *handled) {
    *handled = 1;
    hdr_count hc = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_header, &hc);
    if (hc.host != 1)
        return send_error(s, c, 400, NULL, NULL, NULL, "exactly one Host header is required");
    if (hc.content_length > 1 || (hc.content_length && hc.transfer_encoding))
        return send_error(s, c, 400, NULL, NULL, NULL, "conflicting Content-Length headers");
    int is_post;
    rq->route = route_of(url, &is_post, rq->session_save);
    if (!strcmp(method, "OPTIONS") && rq->route != R_NONE && s->cfg.cors_origin) {
        /* a CORS preflight: no key (browsers send none), no body */
        struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type, X-Session-Id");
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
        enum MHD_Result ret = queue(c, 204, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (rq->route != R_HEALTH && rq->route != R_PAGE && !authorized(s, c))
        return send_error(s, c, 401, NULL, "WWW-Authenticate", "Bearer",
                          "missing or wrong API key (Authorization: Bearer KEY)");
    if (rq->route == R_NONE) return send_error(s, c, 404, NULL, NULL, NULL, "no route %s", url);
    /* is_post: 0 GET/HEAD, 1 POST, 2 DELETE */
    int ok = is_post == 2 ? !strcmp(method, "DELETE")
             : is_post    ? !strcmp(method, "POST")
                          : (!strcmp(method, "GET") || !strcmp(method, "HEAD"));
    if (!ok)
        return send_error(s, c, 405, NULL, "Allow", is_post == 2 ? "DELETE" : is_post ? "POST" : "GET, HEAD",
                          "method %s not allowed on %s", method, url);
    if (is_post) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno || end == cl || *end)
                return send_error(s, c, 400, NULL, NULL, NULL, "malformed Content-Length");
            if (v > s->cfg.max_body)
                return send_error(s, c, 413, NULL, NULL, NULL, "request body over %zu bytes",
                                  s->cfg.max_body);
        }
        if (rq->route != R_SAVE && rq->route != R_DELETE) { /* the two without a body */
            const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
            if (!ct || strncasecmp(ct, "application/json", 16) ||
                (ct[16] && ct[16] != ';' && ct[16] != ' '))
                return send_error(s, c, 400, NULL, NULL, NULL,
                                  "Content-Type must be application/json");
        }
    }
    if (rq->route != R_HEALTH && rq->route != R_METRICS && rq->route != R_PAGE && !s->loaded)
        return send_error(s, c, 503, NULL, "Retry-After", "1", "the model is loading");
    *handled = 0;
    return MHD_YES;
}

/* The request, once complete (headers and body in rq): answer it. Sets
 * *streaming when the response is a stream still being generated. */
static enum MHD_Result dispatch(sk_server *s, struct MHD_Connection *c, req *rq, int *streaming) {
    if (rq->too_big)
        return send_error(s, c, 413, NULL, NULL, NULL, "request body over %zu bytes", s->cfg.max_body);
    switch (rq->route) {
    case R_HEALTH:
        if (!s->loaded) return send_json(c, 503, json_pack("{s:s}", "status", "loading"), NULL, NULL);
        return send_json(c, 200, json_pack("{s:s}", "status", "ok"), NULL, NULL);
    case R_METRICS: return handle_metrics(s, c);
    case R_PAGE: return send_page(c);
    case R_MODELS: return handle_models(s, c, NULL);
    case R_MODEL: return handle_models(s, c, rq->session_save);
    case R_SAVE: return handle_save(s, c, rq->session_save);
    case R_DELETE: return handle_delete(s, c, rq->session_save);
    default: break;
    }
    json_error_t jerr;
    json_t *body = rq->len ? json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!body)
        return send_error(s, c, 400, NULL, NULL, NULL, "the body is not valid JSON%s%s",
                          rq->len ? ": " : "", rq->len ? jerr.text : "");
    enum MHD_Result r;
    if (!json_is_object(body)) r = send_error(s, c, 400, NULL, NULL, NULL, "the body must be a JSON object");
    else if (rq->route == R_CHAT) r = handle_generate(s, c, body, 1, rq->http11, streaming);
    else if (rq->route == R_COMPL) r = handle_generate(s, c, body, 0, rq->http11, streaming);
    else if (rq->route == R_TOKENIZE) r = handle_tokenize(s, c, body);
    else if (rq->route == R_EMBED) r = handle_embeddings(s, c, body);
    else if (rq->route == R_TEMPLATE) r = handle_template(s, c, body);
    else r = handle_detokenize(s, c, body);
    json_decref(body);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls) {
    sk_server *s = cls;
    req *rq = *con_cls;
    if (!rq) { /* the headers are in */
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        rq->k = conn_of(c);
        rq->http11 = strcmp(version, MHD_HTTP_VERSION_1_0) != 0;
        int handled;
        enum MHD_Result r = check_headers(s, c, url, method, rq, &handled);
        if (handled) rq->route = -1;
        conn_phase(s, rq->k, handled ? CONN_BUSY : CONN_BODY);
        return r;
    }
    if (rq->route < 0) { /* an error was queued: drop the rest */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        conn_body(s, rq->k, n);
        if (rq->too_big || rq->len + n > s->cfg.max_body) {
            rq->too_big = 1;
            return MHD_YES;
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 4096;
            while (cap < rq->len + n + 1) cap *= 2;
            char *b = realloc(rq->body, cap);
            if (!b) return MHD_NO;
            rq->body = b;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload, n);
        rq->len += n;
        return MHD_YES;
    }
    /* the body is in: handling may wait (queue, pre-fill, generation, a
     * session save) without a byte on the socket */
    conn_phase(s, rq->k, CONN_BUSY);
    conn_timeout(c, s->cfg.timeout_s + 30);
    int streaming = 0;
    enum MHD_Result r = dispatch(s, c, rq, &streaming);
    if (!streaming) conn_timeout(c, s->cfg.idle_timeout_s); /* a finished reply */
    return r;
}

/* A request is over (answered, or its connection closed): the connection
 * waits for the next one, under the idle timeout. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)toe;
    sk_server *s = cls;
    req *rq = *con_cls;
    if (rq) {
        conn_phase(s, rq->k, CONN_HEAD);
        conn_timeout(c, s->cfg.idle_timeout_s);
        free(rq->body);
        free(rq);
    }
    *con_cls = NULL;
}

/* ---- life cycle -------------------------------------------------------- */

sk_status sk_server_start(const sk_server_config *cfg, sk_server **out, sk_error *err) {
    *out = NULL;
    if (cfg->n_slots < 1 || cfg->n_slots > 256)
        return sk_error_set(err, SK_ERR_INVALID, "--slots must be 1..256, got %d", cfg->n_slots);
    if (cfg->queue_max < 0 || cfg->queue_max > 65536)
        return sk_error_set(err, SK_ERR_INVALID, "--queue must be 0..65536, got %d", cfg->queue_max);
    if (cfg->port < 0 || cfg->port > 65535)
        return sk_error_set(err, SK_ERR_INVALID, "--port must be 0..65535, got %d", cfg->port);
    if (!(cfg->header_timeout_s >= 1 && cfg->header_timeout_s <= 3600))
        return sk_error_set(err, SK_ERR_INVALID, "--header-timeout must be 1..3600 s, got %g",
                            cfg->header_timeout_s);
    if (!(cfg->idle_timeout_s >= 1 && cfg->idle_timeout_s <= 86400))
        return sk_error_set(err, SK_ERR_INVALID, "--idle-timeout must be 1..86400 s, got %g",
                            cfg->idle_timeout_s);
    if (cfg->max_conn_per_ip < 0)
        return sk_error_set(err, SK_ERR_INVALID, "--max-conn-per-ip must be >= 0, got %d",
                            cfg->max_conn_per_ip);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int gai = getaddrinfo(cfg->host, port, &hints, &ai);
    if (gai || !ai)
        return sk_error_set(err, SK_ERR_INVALID, "cannot resolve --host %s: %s", cfg->host,
                            gai_strerror(gai));
    sk_server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return sk_error_set(err, SK_ERR_NOMEM, "out of memory");
    }
    s->cfg = *cfg;
    s->listen_fd = MHD_INVALID_SOCKET;
    srv_pool_init(&s->pool, &s->cfg);
    pthread_mutex_init(&s->conn_mu, NULL);
    pthread_mutex_init(&s->embed_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* watch_main's ticks */
    pthread_cond_init(&s->conn_cv, &ca);
    pthread_condattr_destroy(&ca);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    /* a thread per connection: the slots, the queue and 64 more (to answer
     * /health, /metrics and 503s while every slot and place is taken) */
    s->conn_limit = (unsigned)(cfg->n_slots + cfg->queue_max + 64);
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_CONNECTION_LIMIT, s->conn_limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout_s,
                            MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (s->d && pthread_create(&s->watch, NULL, watch_main, s) == 0) s->watch_running = 1;
    if (!s->watch_running) {
        int listening = s->d != NULL;
        if (s->d) MHD_stop_daemon(s->d);
        pthread_cond_destroy(&s->conn_cv);
        pthread_mutex_destroy(&s->conn_mu);
    pthread_mutex_destroy(&s->embed_mu);
        srv_pool_free(&s->pool);
        free(s);
        if (listening) return sk_error_set(err, SK_ERR_NOMEM, "cannot start the connection watch");
        return sk_error_set(err, SK_ERR_IO, "cannot listen on %s:%d (in use?)", cfg->host, cfg->port);
    }
    *out = s;
    return SK_OK;
}

int sk_server_port(const sk_server *s) {
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    return di && di->port ? (int)di->port : s->cfg.port;
}

sk_status sk_server_set_model(sk_server *s, const sk_model *m, sk_error *err) {
    s->m = m;
    s->env.tok = sk_model_tokenizer(m);
    s->env.n_vocab = sk_model_hparams(m)->n_vocab;
    s->env.kind = s->cfg.chat_kind >= 0 ? (sk_chat_kind)s->cfg.chat_kind
                                        : sk_chat_detect_model(sk_model_chat_template(m), sk_model_hparams(m)->arch,
                                                               sk_model_tokenizer(m), NULL);
    s->env.sp = s->cfg.sp;
    s->env.max_tokens = s->cfg.max_tokens;
    if (sk_model_sink_token(m) >= 0 && !s->cfg.sinks_set &&
        (s->cfg.cache.policy == SK_CACHE_SINK || s->cfg.cache.policy == SK_CACHE_SHIFT))
        s->cfg.cache.n_sinks = 1; /* the token the tokenizer puts first (sk_tokenizer_lead) */
    sk_status st = srv_pool_set_model(&s->pool, m, s->env.kind, err);
    if (st) return st;
    s->loaded = 1;
    return SK_OK;
}

void sk_server_shutdown(sk_server *s) {
    if (!s || s->shut_down) return;
    s->shut_down = 1;
    if (s->d) s->listen_fd = MHD_quiesce_daemon(s->d);
    srv_pool_stop(&s->pool);
}

void sk_server_free(sk_server *s) {
    if (!s) return;
    sk_server_shutdown(s);
    if (s->d) MHD_stop_daemon(s->d); /* every connection's record is freed by now */
    if (s->listen_fd != MHD_INVALID_SOCKET) close(s->listen_fd);
    pthread_mutex_lock(&s->conn_mu);
    s->watch_stop = 1;
    pthread_cond_signal(&s->conn_cv);
    pthread_mutex_unlock(&s->conn_mu);
    pthread_join(s->watch, NULL);
    pthread_cond_destroy(&s->conn_cv);
    pthread_mutex_destroy(&s->conn_mu);
    pthread_mutex_destroy(&s->embed_mu);
    srv_pool_free(&s->pool);
    free(s);
}
