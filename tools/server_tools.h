/* server_tools.h - tool calls in `sinkllm serve` (OpenAI's "tools",
 * "tool_choice", "parallel_tool_calls", assistant "tool_calls" and
 * role "tool" messages): what a request offers, how it is written into the
 * prompt, and how a reply is read back into calls.
 *
 * The prompt format is Qwen2.5's (Hermes style), written into the messages
 * before the model's own chat template renders them, so it works with
 * every template (docs/tool-calls.md):
 *   system  its text, "\n\n", then the tools block ("# Tools ... <tools>",
 *           one line of JSON per tool as the request gave it, "</tools>",
 *           the instruction to answer <tool_call>{"name": ..., "arguments":
 *           ...}</tool_call>); no system message: the block alone
 *   assistant with tool_calls: its text, then per call
 *           "<tool_call>\n{"name": "N", "arguments": ARGS}\n</tool_call>"
 *           (joined by "\n")
 *   tool    "<tool_response>\nCONTENT\n</tool_response>", consecutive tool
 *           messages joined by "\n" into one user message
 * With a ChatML template and a system message the prompt is byte for byte
 * what Qwen2.5's Jinja template renders.
 *
 * Error convention of this module: the request-side functions return 0,
 * or -1 with a srv_perr filled (400 naming the field, 500 out of memory),
 * as server_request.c does; the reply-side ones return NULL when memory
 * runs out (jansson's convention). */
#ifndef SK_SERVER_TOOLS_H
#define SK_SERVER_TOOLS_H

#include <jansson.h>
#include <stddef.h>

#include "sinkllm.h"

struct srv_perr;

#define SRV_MAX_TOOLS 128
#define SRV_TOOL_OPEN "<tool_call>"
#define SRV_TOOL_CLOSE "</tool_call>"

typedef enum srv_tool_mode {
    SRV_TOOLS_OFF = 0,   /* no tools, or tool_choice "none": nothing rendered or parsed */
    SRV_TOOLS_AUTO,      /* the model may call: the reply is parsed, not constrained */
    SRV_TOOLS_REQUIRED,  /* at least one call, constrained by a grammar */
    SRV_TOOLS_NAMED      /* exactly the named function, constrained */
} srv_tool_mode;

/* The tools of a request. */
typedef struct srv_tools {
    srv_tool_mode mode;
    int parallel;        /* parallel_tool_calls: several calls in one reply */
    int n;               /* tools offered */
    char **names;        /* (n) their function names (malloc'ed) */
    char *block;         /* the system-prompt text listing them (malloc'ed, NUL-terminated;
                            NULL when mode is OFF) */
    sk_grammar *lazy;    /* AUTO: the calls' grammar, applied from the moment the reply
                            writes SRV_TOOL_OPEN (NULL: none; see srv_tools_parse) */
} srv_tools;

/* Parse "tools", "tool_choice" and "parallel_tool_calls" of a chat body
 * into t (which must start zeroed). REQUIRED and NAMED compile the grammar
 * of the calls into *grammar, which must be NULL on entry (a request that
 * constrains its reply otherwise cannot also require a call: a 400). AUTO
 * compiles the same grammar into t->lazy, for the reply from its first
 * SRV_TOOL_OPEN on, unless *grammar is set (the reply is constrained
 * already) or a function's parameters use a schema keyword outside the
 * supported subset (then calls are read back unconstrained).
 * Every tool is {"type": "function", "function": {"name", "description",
 * "parameters", "strict"}}; names are 1-64 of [A-Za-z0-9_-], unique.
 * Returns 0 or -1 (e filled); free t with srv_tools_free either way. */
int srv_tools_parse(json_t *body, srv_tools *t, sk_grammar **grammar, struct srv_perr *e);
void srv_tools_free(srv_tools *t);

/* The text of an assistant message with tool_calls (an array of
 * {"id", "type": "function", "function": {"name", "arguments": a JSON
 * text}}): content (may be "") followed by the calls as the prompt format
 * writes them. idx names the message in errors. Returns a malloc'ed
 * string, or NULL with e filled. */
char *srv_tools_assistant_text(json_t *tool_calls, const char *content, int idx, struct srv_perr *e);

/* Append a tool message's content to *buf (malloc'ed, NULL at first) as a
 * <tool_response> block, "\n" before it when *buf is not empty. Returns 0
 * or -1 (e filled). */
int srv_tools_append_response(char **buf, const char *content, struct srv_perr *e);

/* How much of text[0, len) may be sent as content while the reply may
 * still turn into tool calls: up to the first SRV_TOOL_OPEN, less a
 * partial one at the end, less the whitespace before either (it is cut
 * from the content when calls follow). from: bytes already sent. */
size_t srv_tools_deliverable(const char *text, size_t from, size_t len);

/* Read a finished reply text[0, len) as content followed by tool calls:
 * from the first SRV_TOOL_OPEN on, one or more blocks SRV_TOOL_OPEN JSON
 * SRV_TOOL_CLOSE (the last close may be missing), whitespace between,
 * each JSON an object {"name": one of t's names, "arguments": an object}.
 * Anything else (no block, a malformed one, text after the calls, an
 * unknown name, more than one call without parallel_tool_calls): NULL
 * with *n_calls 0, the whole text is content. Otherwise the calls as
 * OpenAI's array [{"id", "type": "function", "function": {"name",
 * "arguments": compact JSON text}}] (ids id_prefix_K) and *content_len =
 * the bytes of content before them (trailing whitespace cut). Out of
 * memory: NULL with *n_calls -1. */
json_t *srv_tools_read_reply(const srv_tools *t, const char *text, size_t len, const char *id_prefix,
                             size_t *content_len, int *n_calls);

#endif
