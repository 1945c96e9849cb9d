/* server_request.h - request bodies of `sinkllm serve`, parsed and checked
 * into plain C structs (no HTTP here, no slot).
 *
 * Error convention of this module: a parser returns 0, or -1 with a
 * srv_perr filled: the HTTP status (400 for a bad field, 500 when memory
 * runs out), the name of the offending field ("" when none) and a message.
 * The caller turns the record into an error response. The fields accepted
 * are listed at the top of server_request.c. */
#ifndef SK_SERVER_REQUEST_H
#define SK_SERVER_REQUEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "server_tools.h"
#include "sinkllm.h"

#define SRV_MAX_STOPS 8
#define SRV_SESSION_CAP 65 /* a session id (1-64 characters) and its NUL */
#define SRV_MAX_TOP_LOGPROBS 20
#define SRV_MAX_CHOICES 16 /* n: at most this many completions per prompt */
#define SRV_MAX_PROMPTS 64 /* completions: prompts in a list, and choices in all (prompts x n) */

/* A parse failure: the HTTP status, the field it names, the message. */
typedef struct srv_perr {
    unsigned status;
    char param[64];
    char msg[400];
} srv_perr;

/* Fill e (status, the field it names or NULL, a printf message); returns -1. */
int srv_perr_set(srv_perr *e, unsigned status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* What a parser needs from the server: the model's tokenizer and chat
 * template, and the defaults for fields a request leaves out. */
typedef struct srv_parse_env {
    const sk_tokenizer *tok;
    sk_chat_kind kind;
    int64_t n_vocab;
    sk_sampler_params sp;  /* default sampling */
    int64_t max_tokens;    /* default max_tokens */
} srv_parse_env;

/* One prompt of a list (completions): its tokens and, with echo, its text. */
typedef struct srv_prompt {
    int32_t *ids;             /* (n) tokens (malloc'ed) */
    int64_t n;
    char *echo;               /* NULL without echo (malloc'ed, NUL-terminated) */
    size_t echo_len;
} srv_prompt;

/* A generation request (POST /v1/chat/completions or /v1/completions). */
typedef struct srv_gen_req {
    int chat;                 /* chat completion (else text completion) */
    int stream, include_usage;
    sk_sampler_params sp;
    int64_t max_tokens;
    char *stops[SRV_MAX_STOPS]; /* (n_stop) stop strings, not NUL-terminated */
    size_t stop_len[SRV_MAX_STOPS];
    int n_stop;
    size_t max_stop_len;
    char session[SRV_SESSION_CAP]; /* "" = anonymous */
    int32_t *prompt;          /* (n_prompt) rendered prompt */
    int64_t n_prompt;
    int64_t n_pin;            /* tokens kept at the start when the prompt is truncated */
    int32_t *bias_id;         /* (n_bias) logit_bias entries, and with ignore_eos */
    float *bias;              /*   every end-of-generation token at -inf */
    int n_bias;
    int n_choices;            /* n: completions of each prompt (1..SRV_MAX_CHOICES) */
    char *echo;               /* completions with echo: the prompt's text, put before each
                                 choice's (malloc'ed; NULL without echo) */
    size_t echo_len;
    srv_prompt *rest;         /* completions with a list of prompts: the prompts after the
                                 first, (n_rest) in order; srv_gen_next_choice moves each in
                                 turn into prompt/n_prompt/echo (the entry left empty) */
    int n_rest;
    int logprobs;             /* return each token's log-probability */
    int top_logprobs;         /*   with this many alternatives (0..SRV_MAX_TOP_LOGPROBS) */
    sk_grammar *grammar;      /* constrained output (response_format, grammar, json_schema,
                                 a tool call that tool_choice requires); NULL when unconstrained */
    srv_tools tools;          /* chat: the tools offered, how the reply may call them */
} srv_gen_req;

/* Parse a generation body (a JSON object) into r, which must start zeroed:
 * sampling fields, stop, stream flags, logit_bias, the session id
 * (hdr_session, the X-Session-Id header, wins over the session_id field;
 * NULL when absent), then messages (chat) or prompt (completion), rendered
 * to tokens. Returns 0, or -1 with e filled; r is released by
 * srv_gen_req_free either way. */
int srv_parse_generate(const srv_parse_env *env, json_t *body, int chat, const char *hdr_session,
                       srv_gen_req *r, srv_perr *e);

/* Free what r owns (stop strings, prompt, biases); r stays reusable. */
void srv_gen_req_free(srv_gen_req *r);

/* POST /v1/embeddings: the inputs as token arrays. */
#define SRV_MAX_EMBED_INPUTS 256
#define SRV_MAX_EMBED_TOKENS 8192 /* tokens of one input */
typedef struct srv_embed_req {
    int32_t *ids[SRV_MAX_EMBED_INPUTS]; /* (n_ids[i]) input i's tokens (malloc'ed) */
    int64_t n_ids[SRV_MAX_EMBED_INPUTS];
    int n;
    int base64;               /* encoding_format "base64" (else "float") */
} srv_embed_req;

/* {"input": a string, an array of strings, an array of token ids or an
 * array of such arrays (each 1..SRV_MAX_EMBED_TOKENS tokens), "model",
 * "encoding_format": "float" | "base64", "user"}; "dimensions" is refused.
 * Strings are tokenized with the model's BOS/EOS as the vocabulary adds
 * them. Returns 0, or -1 with e filled; free r with srv_embed_req_free
 * either way. */
int srv_parse_embeddings(const srv_parse_env *env, json_t *body, srv_embed_req *r, srv_perr *e);
void srv_embed_req_free(srv_embed_req *r);

/* POST /tokenize {"content", "add_special", "parse_special"}: *text points
 * into body (*len bytes). Returns 0, or -1 with e filled. */
int srv_parse_tokenize(json_t *body, const char **text, size_t *len, int *add_special,
                       int *parse_special, srv_perr *e);

/* POST /detokenize {"tokens"}: every id in [0, n_vocab); *ids (malloc'ed,
 * *n entries, the caller frees it). Returns 0, or -1 with e filled. */
int srv_parse_detokenize(const srv_parse_env *env, json_t *body, int32_t **ids, size_t *n,
                         srv_perr *e);

/* A session id (1-64 characters of A-Z a-z 0-9 _ -). Returns 0, or -1
 * with e filled (400, "session_id"). */
int srv_check_session_id(const char *id, srv_perr *e);

#endif
