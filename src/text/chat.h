/* chat.h - chat templates: a conversation rendered to prompt tokens.
 *
 * A GGUF model names its chat format as Jinja text (tokenizer.chat_template).
 * We do not run Jinja: sk_chat_detect recognises the family from marker
 * strings in that text, and each family's format is written out by hand in
 * chat.c (the exact text of every format is in the comment there).
 *
 * Safety: template markers (<|im_start|>, [INST], <start_of_turn>, ...) become
 * special tokens when the vocabulary has them as CONTROL tokens; message
 * content is always tokenized as plain text, so a user who types
 * "<|im_start|>system" gets the tokens for those characters, not a new turn.
 *
 * Incremental chat: render the first turn with SK_CHAT_ADD_GEN, generate the
 * reply, feed sk_chat_render_turn_end's tokens to close it, then render each
 * new user turn alone with SK_CHAT_ADD_GEN | SK_CHAT_CONTINUE. */
#ifndef SK_CHAT_H
#define SK_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tokenizer.h"

typedef enum sk_chat_kind {
    SK_CHAT_CHATML = 0, /* <|im_start|>role\n...<|im_end|>\n */
    SK_CHAT_SMOLLM2,    /* ChatML plus SmolLM2's default system message */
    SK_CHAT_LLAMA2,     /* <s>[INST] <<SYS>>..<</SYS>> ... [/INST] ... </s> */
    SK_CHAT_LLAMA3,     /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    SK_CHAT_MISTRAL,    /* <s>[INST] ...[/INST] ...</s> (Mistral v3 layout) */
    SK_CHAT_GEMMA,      /* <start_of_turn>user\n...<end_of_turn>\n */
    SK_CHAT_ZEPHYR,     /* <|user|>\n...</s>\n */
    SK_CHAT_N_KINDS
} sk_chat_kind;

typedef struct sk_chat_msg {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* NUL-terminated UTF-8; any length */
} sk_chat_msg;

/* Flags of sk_chat_render / sk_chat_render_text. */
enum {
    SK_CHAT_ADD_GEN = 1,  /* append the generation prompt (the assistant header) */
    SK_CHAT_CONTINUE = 2, /* the messages continue a conversation already fed: no
                             BOS, no default system message, no other
                             start-of-conversation text */
};

/* Parse a kind name: "chatml", "smollm2", "llama2", "llama3", "mistral",
 * "gemma", "zephyr". Unknown or NULL name: SK_ERR_INVALID naming it, and
 * *out untouched. */
sk_status sk_chat_kind_parse(const char *name, sk_chat_kind *out, sk_error *err);

/* The name of a kind as sk_chat_kind_parse reads it; "unknown" for a value
 * out of range. Never NULL. */
const char *sk_chat_kind_name(sk_chat_kind k);

/* Recognise the family of a tokenizer.chat_template Jinja text (a bare kind
 * name is accepted too). NULL or unrecognised text gives SK_CHAT_CHATML with
 * *recognised = 0; otherwise *recognised = 1. recognised may be NULL.
 * SmolLM2's template (ChatML that inserts "You are a helpful AI assistant
 * named SmolLM, trained by Hugging Face") gives SK_CHAT_SMOLLM2. */
sk_chat_kind sk_chat_detect(const char *jinja, int *recognised);

/* Render msgs[0..n_msgs) to token ids with tok. flags: SK_CHAT_ADD_GEN,
 * SK_CHAT_CONTINUE (0 or 1 for add_generation_prompt works as expected).
 * BOS: Llama-2, Llama-3, Mistral and Gemma start with the vocabulary's BOS
 * (skipped if it has none); ChatML and Zephyr only when the vocabulary adds
 * BOS (tokenizer.ggml.add_bos_token); never with SK_CHAT_CONTINUE (Llama-2's
 * per-turn "<s>" stays: it is part of every user turn).
 * Writes at most cap ids to out (out may be NULL when cap is 0) and sets
 * *n_out to the full count: call again with a larger buffer when
 * *n_out > cap. Errors (SK_ERR_INVALID, message naming the message index):
 * NULL role or content, a role other than system/user/assistant, and for
 * Llama-2, Mistral and Gemma a system message that is not first or not
 * followed by a user message, or user/assistant turns that do not alternate
 * starting with user. */
sk_status sk_chat_render(const sk_tokenizer *tok, sk_chat_kind k, const sk_chat_msg *msgs, int n_msgs, int flags,
                         int32_t *out, int64_t cap, int64_t *n_out, sk_error *err);

/* The same conversation as prompt text (what the ids above spell, with BOS
 * and EOS written "<s>"/"</s>", "<|begin_of_text|>" or "<bos>" as the family
 * names them; the vocabulary-dependent BOS of ChatML/Zephyr is not written).
 * Writes at most cap - 1 bytes and a NUL (when cap > 0) and sets *n_out to
 * the full length without the NUL, as snprintf does. Same errors as
 * sk_chat_render. */
sk_status sk_chat_render_text(sk_chat_kind k, const sk_chat_msg *msgs, int n_msgs, int flags, char *buf,
                              size_t cap, size_t *n_out, sk_error *err);

/* The text a template puts after an assistant reply, as token ids: the end
 * of turn (including the end-of-generation token the model itself emits,
 * which a chat loop usually samples but does not feed):
 *   ChatML/SmolLM2 "<|im_end|>\n", Llama-2 " </s>", Llama-3 "<|eot_id|>",
 *   Mistral "</s>", Gemma "<end_of_turn>\n", Zephyr "</s>\n".
 * Same output convention as sk_chat_render. */
sk_status sk_chat_render_turn_end(const sk_tokenizer *tok, sk_chat_kind k, int32_t *out, int64_t cap,
                                  int64_t *n_out, sk_error *err);

#endif
