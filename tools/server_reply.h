/* server_reply.h - the JSON bodies `sinkllm serve` answers with (OpenAI's
 * shapes plus the "sinkllm" extras), built from a generation's state.
 *
 * Error convention of this module: each builder returns a new jansson
 * reference, or NULL when memory runs out (jansson's own convention).
 * Nothing here sends anything. The extras are listed at the top of
 * server_reply.c. */
#ifndef SK_SERVER_REPLY_H
#define SK_SERVER_REPLY_H

#include <jansson.h>
#include <stddef.h>

#include "server_slots.h"

/* {"error": {"message", "type", "param" (null when NULL), "code": null}}. */
json_t *srv_reply_error(const char *type, const char *param, const char *msg);

/* The choice g has finished (index g->choice): text or message, logprobs,
 * finish reason. A chat reply that calls tools (server_tools.h) has
 * "tool_calls" (ids from the request id) and content before them or null,
 * finish reason "tool_calls". */
json_t *srv_reply_choice(const srv_gen *g, const char *id);

/* The response of a finished non-streaming generation (request id, its
 * creation time in seconds) with its choices (an array, stolen). */
json_t *srv_reply_completion(const srv_gen *g, const char *id, long created, json_t *choices);

/* One streamed chunk: a delta of len bytes of text (none when text is
 * NULL), the finish reason (NULL: not the last; the last also carries the
 * "sinkllm" extras), role: announce the assistant role (chat), and the
 * logprobs of entries [lp0, lp1) of g->lp (none when lp1 <= lp0). */
json_t *srv_reply_chunk(const srv_gen *g, const char *id, long created, const char *text,
                        size_t len, const char *finish, int role, int64_t lp0, int64_t lp1);

/* A streamed chunk of tool-call deltas (calls: an array of OpenAI's delta
 * entries {"index", ...}, stolen), finish reason null. */
json_t *srv_reply_tool_chunk(const srv_gen *g, const char *id, long created, json_t *calls);

/* The prefix of tool-call ids of choice g of request id. Writes at most
 * cap bytes to buf. */
void srv_reply_call_prefix(const srv_gen *g, const char *id, char *buf, size_t cap);

/* The first logprobs entry at or after from whose text starts at or past
 * text_end: entries [from, result) belong to text before text_end. */
int64_t srv_logprobs_upto(const srv_gen *g, int64_t from, size_t text_end);

/* The chunk that ends a stream with stream_options.include_usage: no
 * choices, the usage and the extras. */
json_t *srv_reply_usage_chunk(const srv_gen *g, const char *id, long created);

#endif
