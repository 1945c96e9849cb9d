/* sinkllm.h - the public C API of sinkllm: everything a program needs to
 * load a model, tokenize, render a chat, generate, and save a session.
 *
 * A model (sk_model) is immutable after loading: weights are views into one
 * read-only mmap of the GGUF file, and any number of contexts may share it.
 * Its tokenizer (sk_tokenizer, from sk_model_tokenizer) lives as long as the
 * model and, like the model, may be used from any number of threads.
 * A context (sk_context) owns a KV cache, scratch buffers and a thread pool;
 * it is used by one thread at a time. So is a sampler (sk_sampler) and a
 * session store (sk_store). Nothing allocates in the token loop.
 *
 * Every call that can fail returns sk_status (0 = SK_OK) and, given an
 * sk_error, a one-line message. The library never prints and never exits.
 * All handles are opaque; free functions accept NULL.
 *
 * Sections: model, tokenizer, chat templates, sampler, grammars, KV cache
 * configuration, context, sessions (one file), session store (a directory of
 * named sessions), system information. examples/simple.c uses most of it. */
#ifndef SINKLLM_H
#define SINKLLM_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SINKLLM_VERSION "0.1.0"

typedef struct sk_model sk_model;
typedef struct sk_context sk_context;
typedef struct sk_tokenizer sk_tokenizer;

/* ---- model ------------------------------------------------------------- */

typedef struct sk_hparams {
    char arch[32];          /* general.architecture: llama, qwen2, qwen3, gemma3, phi3 */
    char name[128];         /* general.name, may be empty */
    int64_t n_vocab;
    int64_t n_ctx_train;    /* llama.context_length */
    int n_embd;             /* model width */
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;           /* attention.key_length, else n_embd / n_head */
    int n_ff;
    int n_rot;              /* rope dimension count (<= head_dim) */
    int rope_neox;          /* 1: rotate (i, i + n_rot/2); 0: rotate (2i, 2i+1) */
    double rope_base;       /* rope.freq_base */
    double rope_scale;      /* linear scaling factor: positions are divided by it */
    float norm_eps;
    int tied_output;        /* output matrix is token_embd */
    int file_type;          /* general.file_type, -1 if absent */
    int n_swa;              /* sliding window of the local layers (Gemma 3), 0: none */
    int n_layer_swa;        /* how many layers are local (sliding-window) layers */
    double rope_base_swa;   /* rope.freq_base of the local layers */
} sk_hparams;

/* Load a GGUF file (read-only mmap). Validates the file, the hyper-parameters
 * against the tensor shapes, and the vocabulary. */
sk_status sk_model_load(const char *path, sk_model **out, sk_error *err);
/* Load only the tokenizer of a GGUF file (llama.cpp's vocab_only): a model
 * file, or a vocabulary-only file (tokenizer.* keys, no tensors, such as
 * scripts/make_vocab.py writes for sinkllm train --vocab). The model has
 * its tokenizer and no weights: sk_model_tokenizer, sk_model_free,
 * sk_model_hparams (n_vocab, arch and name when the file has them; zeros
 * for the rest) and sk_trainer_export take it; sk_context_new, sk_batch_new
 * and sk_store_open refuse it (SK_ERR_INVALID). */
sk_status sk_model_load_vocab(const char *path, sk_model **out, sk_error *err);
void sk_model_free(sk_model *m);
const sk_hparams *sk_model_hparams(const sk_model *m);
/* The model's tokenizer (for the tokenizer and chat calls below); owned by
 * the model, valid until sk_model_free. */
const sk_tokenizer *sk_model_tokenizer(const sk_model *m);
/* Bytes of weights mapped; a short description ("llama 135M Q4_1"). */
uint64_t sk_model_size(const sk_model *m);
uint64_t sk_model_n_params(const sk_model *m);
const char *sk_model_desc(const sk_model *m);
/* Chat template text (tokenizer.chat_template) or NULL. */
const char *sk_model_chat_template(const sk_model *m);
/* The token the model was pre-trained with at the start of every sample
 * (<arch>.sink_token_id, written by sinkllm train --sink-token; checked to
 * be in the vocabulary), -1 when none. The caches do not pin it on their
 * own: feed it first with one sink (sinkllm ppl does). */
int32_t sk_model_sink_token(const sk_model *m);

/* ---- tokenizer ----------------------------------------------------------
 * Byte-level BPE ("gpt2" vocabularies, with the pre-tokenizer the GGUF file
 * names) and SentencePiece-style BPE ("llama" vocabularies). Special tokens
 * (CONTROL, UNKNOWN) are recognised in text only when the caller asks
 * (parse_special): text from a user is plain text, so "<|im_start|>" typed
 * by a user gives the tokens of those characters. USER_DEFINED tokens are
 * matched always, as llama.cpp and Hugging Face do. */

/* Token types (GGUF tokenizer.ggml.token_type values), of sk_token_type. */
enum sk_token_type {
    SK_TOKTYPE_UNDEFINED = 0,
    SK_TOKTYPE_NORMAL = 1,
    SK_TOKTYPE_UNKNOWN = 2,
    SK_TOKTYPE_CONTROL = 3,
    SK_TOKTYPE_USER_DEFINED = 4,
    SK_TOKTYPE_UNUSED = 5,
    SK_TOKTYPE_BYTE = 6,
};

/* Tokenize text[0..len) (UTF-8; invalid bytes are encoded as their bytes).
 * add_special: prepend BOS / append EOS as the vocabulary says (add_bos...).
 * parse_special: recognise CONTROL/UNKNOWN token texts in the input
 * (USER_DEFINED ones are recognised either way).
 * Writes at most cap ids to out and sets *n_out to the full count; call
 * again with a larger buffer when *n_out > cap. */
sk_status sk_tokenize(const sk_tokenizer *tok, const char *text, size_t len,
                      int add_special, int parse_special,
                      int32_t *out, int64_t cap, int64_t *n_out, sk_error *err);

/* The bytes a token stands for (byte-level decoded; SPM "\xe2\x96\x81" ->
 * ' ', <0xXX> -> that byte). Control tokens render as their text only when
 * render_special is set, else as "". Returns the byte count (which may
 * exceed cap: then only cap bytes were written), or -1 for an id out of
 * range. A piece may end inside a UTF-8 character: to print a stream of
 * tokens, use the streaming detokenizer (sk_detok) or sk_detokenize. */
int sk_token_to_piece(const sk_tokenizer *tok, int32_t id, int render_special,
                      char *buf, size_t cap);

/* The text of ids[0..n) as the streaming detokenizer emits it (whole UTF-8
 * characters; invalid or unfinished sequences as U+FFFD). Writes at most
 * cap - 1 bytes and a NUL (when cap > 0) and sets *n_out to the full length
 * without the NUL, as snprintf does. An id out of range is SK_ERR_INVALID
 * naming its index. */
sk_status sk_detokenize(const sk_tokenizer *tok, const int32_t *ids, int64_t n,
                        int render_special, char *buf, size_t cap, size_t *n_out,
                        sk_error *err);

/* Vocabulary size; the ids of the special tokens, -1 when absent. */
int64_t sk_tokenizer_n_vocab(const sk_tokenizer *tok);
int32_t sk_tokenizer_bos(const sk_tokenizer *tok);
int32_t sk_tokenizer_eos(const sk_tokenizer *tok);
/* -1 if none; when the vocabulary names none, the first CONTROL token of
 * "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
 * ... (llama.cpp's list) is taken. */
int32_t sk_tokenizer_eot(const sk_tokenizer *tok);
/* Does tokenizing with add_special prepend BOS (tokenizer.ggml.add_bos_token)? */
int sk_tokenizer_add_bos(const sk_tokenizer *tok);
/* The token tokenizing with add_special puts first, before BOS: the sink
 * token of a model trained with one (<arch>.sink_token_id, sinkllm train
 * --sink-token), which sk_model_load sets; -1 when none. Chat rendering
 * starts a conversation with it too. */
int32_t sk_tokenizer_lead(const sk_tokenizer *tok);
/* The fill-in-the-middle tokens: ids[0] prefix, ids[1] suffix, ids[2]
 * middle, each -1 when absent. From tokenizer.ggml.fim_pre/fim_suf/
 * fim_mid_token_id, else the first present of llama.cpp's texts for each
 * ("<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", ...).
 * Returns 1 when all three are present, else 0. */
int sk_tokenizer_fim(const sk_tokenizer *tok, int32_t ids[3]);
/* Is id an end-of-generation token (EOS, EOT, or e.g. <|im_end|>)? A
 * generation loop stops on these. */
int sk_token_is_eog(const sk_tokenizer *tok, int32_t id);
/* Token id of an exact token text (e.g. "<|im_start|>"), -1 if none. */
int32_t sk_token_lookup(const sk_tokenizer *tok, const char *text, size_t len);
/* enum sk_token_type of id; SK_TOKTYPE_UNDEFINED for an id out of range. */
int sk_token_type(const sk_tokenizer *tok, int32_t id);

/* Streaming detokenizer: feeds pieces and emits only whole UTF-8
 * characters, holding back an incomplete tail (at most 3 bytes) until the
 * next piece completes it. Invalid sequences are emitted as U+FFFD. A plain
 * struct: no allocation, one per output stream. */
typedef struct sk_detok {
    unsigned char pending[8];
    int n_pending;
} sk_detok;

void sk_detok_init(sk_detok *d);
/* Append the printable bytes of token id to out (cap bytes); returns bytes
 * written (pieces are short: cap >= 256 + 8 always suffices). */
size_t sk_detok_push(sk_detok *d, const sk_tokenizer *tok, int32_t id, int render_special,
                     char *out, size_t cap);
/* Emit whatever is still pending (as U+FFFD for an incomplete sequence). */
size_t sk_detok_flush(sk_detok *d, char *out, size_t cap);

/* ---- chat templates -----------------------------------------------------
 * A GGUF model names its chat format as Jinja text (sk_model_chat_template).
 * Jinja is not run: sk_chat_detect recognises the family from marker strings
 * in that text, and each family's format is written out by hand. Template
 * markers (<|im_start|>, [INST], <start_of_turn>, ...) become special tokens
 * when the vocabulary has them as CONTROL tokens; message content is always
 * tokenized as plain text, so a user cannot open a new turn by typing one.
 *
 * Incremental chat: render the first turn with SK_CHAT_ADD_GEN, generate the
 * reply, feed sk_chat_render_turn_end's tokens to close it, then render each
 * new user turn alone with SK_CHAT_ADD_GEN | SK_CHAT_CONTINUE. */

typedef enum sk_chat_kind {
    SK_CHAT_CHATML = 0, /* <|im_start|>role\n...<|im_end|>\n */
    SK_CHAT_SMOLLM2,    /* ChatML plus SmolLM2's default system message */
    SK_CHAT_LLAMA2,     /* <s>[INST] <<SYS>>..<</SYS>> ... [/INST] ... </s> */
    SK_CHAT_LLAMA3,     /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    SK_CHAT_MISTRAL,    /* <s>[INST] ...[/INST] ...</s> (Mistral v3 layout) */
    SK_CHAT_GEMMA,      /* <start_of_turn>user\n...<end_of_turn>\n */
    SK_CHAT_ZEPHYR,     /* <|user|>\n...</s>\n */
    SK_CHAT_PHI3,       /* <|user|>\n...<|end|>\n<|assistant|>\n */
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
 * "gemma", "zephyr", "phi3". Unknown or NULL name: SK_ERR_INVALID naming it,
 * and *out untouched. */
sk_status sk_chat_kind_parse(const char *name, sk_chat_kind *out, sk_error *err);

/* The name of a kind as sk_chat_kind_parse reads it; "unknown" for a value
 * out of range. Never NULL. */
const char *sk_chat_kind_name(sk_chat_kind k);

/* Recognise the family of a tokenizer.chat_template Jinja text (a bare kind
 * name is accepted too); pass sk_model_chat_template(m) for a model's own.
 * NULL or unrecognised text gives SK_CHAT_CHATML with *recognised = 0;
 * otherwise *recognised = 1. recognised may be NULL. SmolLM2's template
 * (ChatML that inserts "You are a helpful AI assistant named SmolLM, trained
 * by Hugging Face") gives SK_CHAT_SMOLLM2. */
sk_chat_kind sk_chat_detect(const char *jinja, int *recognised);

/* How sk_chat_detect_model chose (*source). */
enum { SK_CHAT_FROM_NONE = 0, SK_CHAT_FROM_TEMPLATE = 1, SK_CHAT_FROM_MODEL = 2 };

/* The chat format of a model from its GGUF metadata: jinja =
 * sk_model_chat_template(m), arch = sk_model_hparams(m)->arch, tok =
 * sk_model_tokenizer(m) (arch and tok may be NULL).
 *   - the file has a template: sk_chat_detect's answer; *source =
 *     SK_CHAT_FROM_TEMPLATE, or SK_CHAT_FROM_NONE (ChatML) when the text is
 *     not recognised (the architecture is not consulted then: a phi3 file
 *     may carry Phi-4's format);
 *   - no template (Gemma 3's GGUFs have none): by architecture (gemma,
 *     gemma2, gemma3 -> gemma; phi3 -> phi3; qwen2, qwen2moe, qwen3,
 *     qwen3moe -> chatml), else by the vocabulary's special tokens
 *     (<|start_header_id|> and <|eot_id|> -> llama3, <|im_start|> -> chatml,
 *     <start_of_turn> -> gemma, <|user|> <|assistant|> <|end|> -> phi3,
 *     [INST] -> mistral); *source = SK_CHAT_FROM_MODEL; nothing known:
 *     ChatML, SK_CHAT_FROM_NONE.
 * source may be NULL. */
sk_chat_kind sk_chat_detect_model(const char *jinja, const char *arch, const sk_tokenizer *tok, int *source);

/* Render msgs[0..n_msgs) to token ids with tok. flags: SK_CHAT_ADD_GEN,
 * SK_CHAT_CONTINUE (0 or 1 for add_generation_prompt works as expected).
 * BOS: Llama-2, Llama-3, Mistral and Gemma start with the vocabulary's BOS
 * (skipped if it has none); ChatML, Zephyr and Phi-3 only when the
 * vocabulary adds BOS (tokenizer.ggml.add_bos_token); never with
 * SK_CHAT_CONTINUE (Llama-2's per-turn "<s>" stays: it is part of every
 * user turn). A marker token that drops the whitespace after it when
 * llama.cpp parses a prompt (Phi-3's, see sk_vocab_read) drops it here too,
 * so the ids are those of llama.cpp's prompt.
 * Writes at most cap ids to out (out may be NULL when cap is 0) and sets
 * *n_out to the full count: call again with a larger buffer when
 * *n_out > cap. Errors (SK_ERR_INVALID, message naming the message index):
 * NULL role or content, a role other than system/user/assistant, and for
 * Llama-2, Mistral and Gemma a system message that is not first or not
 * followed by a user message, or user/assistant turns that do not alternate
 * starting with user. */
sk_status sk_chat_render(const sk_tokenizer *tok, sk_chat_kind k, const sk_chat_msg *msgs,
                         int n_msgs, int flags, int32_t *out, int64_t cap, int64_t *n_out,
                         sk_error *err);

/* The same conversation as prompt text (what the ids above spell, with BOS
 * and EOS written "<s>"/"</s>", "<|begin_of_text|>" or "<bos>" as the family
 * names them; the vocabulary-dependent BOS of ChatML/Zephyr is not written).
 * Writes at most cap - 1 bytes and a NUL (when cap > 0) and sets *n_out to
 * the full length without the NUL, as snprintf does. Same errors as
 * sk_chat_render. */
sk_status sk_chat_render_text(sk_chat_kind k, const sk_chat_msg *msgs, int n_msgs, int flags,
                              char *buf, size_t cap, size_t *n_out, sk_error *err);

/* The text a template puts after an assistant reply, as token ids: the end
 * of turn (including the end-of-generation token the model itself emits,
 * which a chat loop usually samples but does not feed):
 *   ChatML/SmolLM2 "<|im_end|>\n", Llama-2 " </s>", Llama-3 "<|eot_id|>",
 *   Mistral "</s>", Gemma "<end_of_turn>\n", Zephyr "</s>\n", Phi-3
 *   "<|end|>\n".
 * Same output convention as sk_chat_render. */
sk_status sk_chat_render_turn_end(const sk_tokenizer *tok, sk_chat_kind k, int32_t *out,
                                  int64_t cap, int64_t *n_out, sk_error *err);

/* ---- sampler ------------------------------------------------------------
 * The chain and its defaults follow llama.cpp's (common sampling):
 *   penalties (repeat / frequency / presence over the last repeat_last_n
 *   accepted tokens) -> top-k -> top-p -> min-p -> temperature -> draw.
 * temp <= 0 is greedy (argmax after penalties; ties -> lowest id).
 * A sampler owns all its scratch (allocated in sk_sampler_new): sampling
 * allocates nothing. Deterministic for a given seed. */

typedef struct sk_sampler_params {
    float temp;            /* 0.8; <= 0 greedy */
    int32_t top_k;         /* 40; <= 0 disables */
    float top_p;           /* 0.95; >= 1 disables */
    float min_p;           /* 0.05; <= 0 disables */
    float repeat_penalty;  /* 1.0 = off */
    int32_t repeat_last_n; /* 64: penalize tokens among the last 64 accepted;
                              0 disables penalties; -1 = every token accepted
                              since the last reset (llama.cpp: the whole
                              context); at most SK_SAMPLER_MAX_LAST_N */
    float presence_penalty;  /* 0.0 */
    float frequency_penalty; /* 0.0 */
    uint64_t seed;         /* SK_SEED_RANDOM picks one from the clock */
} sk_sampler_params;

#define SK_SEED_RANDOM UINT64_MAX

/* Largest accepted repeat_last_n (the history ring is allocated up front). */
#define SK_SAMPLER_MAX_LAST_N (1 << 20)

typedef struct sk_sampler sk_sampler;

/* Fill p with llama.cpp's defaults. */
void sk_sampler_params_default(sk_sampler_params *p);

/* Check ranges: every float finite (not NaN/inf), temp any value (<= 0 is
 * greedy, as in llama.cpp), 0 <= top_p <= 1, 0 <= min_p <= 1,
 * repeat_penalty > 0, -1 <= repeat_last_n <= SK_SAMPLER_MAX_LAST_N.
 * Returns SK_OK or SK_ERR_INVALID with a message naming the field. */
sk_status sk_sampler_params_validate(const sk_sampler_params *p, sk_error *err);

/* Validate p, then allocate a sampler for a vocabulary of n_vocab tokens
 * (1 <= n_vocab <= INT32_MAX) with all its scratch. On success *out owns it
 * (free with sk_sampler_free); on error *out is NULL and err says why
 * (SK_ERR_INVALID, SK_ERR_NOMEM). */
sk_status sk_sampler_new(const sk_sampler_params *p, int64_t n_vocab, sk_sampler **out,
                         sk_error *err);
/* Release s and all it owns; NULL is a no-op. */
void sk_sampler_free(sk_sampler *s);

/* Choose a token. logits has n_vocab entries and may be modified (penalties
 * are applied in place): copy sk_logits() into a buffer of your own first.
 * Allocates nothing. Returns an id in [0, n_vocab). Does not record the
 * token: call sk_sampler_accept with the token you keep. */
int32_t sk_sampler_sample(sk_sampler *s, float *logits);

/* Run the chain on logits (modified in place as by sk_sampler_sample) but do
 * not draw: write the surviving candidates, best first (logit descending,
 * ties -> lowest id), up to cap of them, into ids and probs (either may be
 * NULL); probs are the draw probabilities after temperature (greedy: the
 * argmax alone, probability 1). Returns the number of survivors, which may
 * exceed cap. Does not advance the generator; allocates nothing. */
int64_t sk_sampler_candidates(sk_sampler *s, float *logits, int32_t *ids, float *probs,
                              int64_t cap);

/* Record a token as part of the history (prompt tokens too) for penalties.
 * Ids outside [0, n_vocab) are ignored. Allocates nothing. */
void sk_sampler_accept(sk_sampler *s, int32_t tok);

/* Forget the history; re-seed the generator with seed (SK_SEED_RANDOM: clock). */
void sk_sampler_reset(sk_sampler *s, uint64_t seed);

/* The seed in use (the one drawn from the clock when SK_SEED_RANDOM was
 * asked for), so that a run can be reproduced. */
uint64_t sk_sampler_seed(const sk_sampler *s);

/* ---- grammars: constrained output -----------------------------------------
 * A grammar in llama.cpp's GBNF (rules `name ::= ...`, `|`, `( )`, `*`,
 * `+`, `?`, `{m,n}`, "literals" with escapes, [classes], [^negated], `.`,
 * `#` comments; the start rule is `root`) is compiled once (sk_grammar,
 * immutable, shareable between threads) and recognised code point by code
 * point by a matcher (sk_grammar_matcher, one per generation): a pushdown
 * recognizer over a set of stacks. JSON schemas compile to GBNF first
 * (sk_json_schema_to_gbnf). Token masks come from walking the vocabulary's
 * piece trie (sk_token_trie, built once per tokenizer) together with the
 * matcher: a subtree whose prefix the grammar rejects is skipped whole.
 *
 * Limits (beyond them compilation fails with SK_ERR_UNSUPPORTED naming the
 * limit, never a hang): grammar text SK_GRAMMAR_MAX_TEXT bytes, repetition
 * counts SK_GRAMMAR_MAX_REPEAT, SK_GRAMMAR_MAX_ELEMS compiled elements,
 * group nesting SK_GRAMMAR_MAX_NEST. Left recursion (also through rules
 * that can be empty, as in ("a"?)*) is an error. A matcher's stacks are at
 * most SK_GRAMMAR_MAX_DEPTH deep, its node pool at most
 * SK_GRAMMAR_MAX_NODES, and one character's step visits at most
 * SK_GRAMMAR_MAX_STEP stack nodes (this bounds the cost of a token mask for
 * grammars ambiguous enough to keep thousands of parses alive); a text that
 * needs more is rejected at that point. */
#define SK_GRAMMAR_MAX_TEXT (1 << 20)
#define SK_GRAMMAR_MAX_REPEAT 4096
#define SK_GRAMMAR_MAX_ELEMS (1 << 20)
#define SK_GRAMMAR_MAX_NEST 64
#define SK_GRAMMAR_MAX_DEPTH 2048
#define SK_GRAMMAR_MAX_NODES (1 << 21)
#define SK_GRAMMAR_MAX_STEP (1 << 12)

typedef struct sk_grammar sk_grammar;
typedef struct sk_grammar_matcher sk_grammar_matcher;
typedef struct sk_token_trie sk_token_trie;

/* Compile GBNF text[0..len) (need not be NUL-terminated). On success *out
 * owns the grammar (sk_grammar_free). On error *out is NULL and err says
 * what and where ("line L, column C: ..."): SK_ERR_FORMAT for a syntax
 * error, an undefined rule, no root, left recursion; SK_ERR_UNSUPPORTED
 * for a limit; SK_ERR_NOMEM. Any bytes are safe input. */
sk_status sk_grammar_compile(const char *text, size_t len, sk_grammar **out, sk_error *err);
void sk_grammar_free(sk_grammar *g);

/* Translate a JSON schema (JSON text json[0..len)) to GBNF. Supported:
 * type (a name or a list of them: object, array, string, number, integer,
 * boolean, null), properties, required, additionalProperties (false, true
 * or a schema), items, minItems, maxItems, minLength, maxLength, enum,
 * const, anyOf, oneOf (as anyOf), nullable, $ref to "#", "#/$defs/NAME" or
 * "#/definitions/NAME" (recursion allowed), and the annotations title,
 * description, default, examples, $schema, $id, $comment, readOnly,
 * writeOnly, deprecated. Any other keyword is SK_ERR_UNSUPPORTED with a
 * message that starts "unsupported JSON schema keyword 'KW'"; malformed
 * JSON or a keyword of the wrong type is SK_ERR_FORMAT naming it. Objects
 * are written with their properties in the schema's order (extra
 * properties only when the schema has none listed); whitespace between
 * tokens is at most 20 characters. On success *gbnf is malloc'ed, NUL
 * terminated (*gbnf_len bytes without the NUL; the caller frees it). */
sk_status sk_json_schema_to_gbnf(const char *json, size_t len, char **gbnf, size_t *gbnf_len,
                                 sk_error *err);

/* sk_json_schema_to_gbnf then sk_grammar_compile. json NULL: any JSON
 * object (OpenAI's response_format json_object). */
sk_status sk_grammar_from_json_schema(const char *json, size_t len, sk_grammar **out, sk_error *err);

/* A matcher at the start of g (borrowed: g must outlive it). Allocates its
 * node pool and scratch; they grow to the grammar's working set within the
 * first tokens and are then reused. SK_ERR_NOMEM. */
sk_status sk_grammar_matcher_new(const sk_grammar *g, sk_grammar_matcher **out, sk_error *err);
void sk_grammar_matcher_free(sk_grammar_matcher *m);
/* Back to the start of the grammar (keeps the allocations). */
void sk_grammar_matcher_reset(sk_grammar_matcher *m);
/* An independent copy of m in its current state. SK_ERR_NOMEM. */
sk_status sk_grammar_matcher_clone(const sk_grammar_matcher *m, sk_grammar_matcher **out,
                                   sk_error *err);

/* Advance m by bytes[0..n) of UTF-8 text; a code point may be split across
 * calls. Returns 1 when the grammar allows the bytes as a continuation (m
 * advanced), 0 when not (m unchanged). Invalid UTF-8 is never allowed. */
int sk_grammar_matcher_advance(sk_grammar_matcher *m, const char *bytes, size_t n);
/* 1 when the text so far is a complete sentence of the grammar (no
 * partial code point pending), else 0. */
int sk_grammar_matcher_accepts(const sk_grammar_matcher *m);
/* 1 when nothing more can be appended (every continuation is rejected). */
int sk_grammar_matcher_done(const sk_grammar_matcher *m);

/* The piece trie of a tokenizer: every token's bytes (sk_token_to_piece,
 * not rendering control tokens) in a byte trie. Control, unknown and
 * empty-piece tokens are never allowed by a mask; end-of-generation tokens
 * (sk_token_is_eog) are allowed exactly when the grammar accepts. Built
 * once per model (tok borrowed: must outlive the trie); immutable after, so
 * any number of matchers may share it. SK_ERR_NOMEM. */
sk_status sk_token_trie_new(const sk_tokenizer *tok, sk_token_trie **out, sk_error *err);
void sk_token_trie_free(sk_token_trie *t);

/* The token mask of m's state: allowed[id] = 1 when token id's bytes are
 * a continuation the grammar allows (or id ends generation and the grammar
 * accepts), else 0, for every id in [0, n_vocab). When no token at all is
 * allowed, the end-of-generation tokens are (a generation cannot be stuck).
 * Returns the number allowed. Walks the trie, skipping every subtree whose
 * prefix is rejected; allocates only while the matcher's pool grows. */
int64_t sk_grammar_mask(sk_grammar_matcher *m, const sk_token_trie *t, uint8_t *allowed);

/* Advance m by token id's bytes (after sampling it). An end-of-generation
 * token is allowed when the grammar accepts and leaves m as is. Returns 1
 * when allowed (m advanced), 0 when not (m unchanged). */
int sk_grammar_accept_token(sk_grammar_matcher *m, const sk_token_trie *t, int32_t id);

/* Constrain a sampler: from now on sk_sampler_sample and
 * sk_sampler_candidates set every token the matcher's mask disallows to
 * -inf before the chain (after what the caller added, as logit_bias), and
 * sk_sampler_sample advances m by the token it draws. m and t are borrowed
 * (NULL, NULL: unconstrained again). Allocates the mask (n_vocab bytes)
 * once. SK_ERR_NOMEM, SK_ERR_INVALID (a trie of another vocabulary size). */
sk_status sk_sampler_set_grammar(sk_sampler *s, sk_grammar_matcher *m, const sk_token_trie *t,
                                 sk_error *err);

/* Apply the constraint alone: set the disallowed entries of logits
 * (n_vocab) to -inf. The mask is computed once per matcher state, so a
 * caller that reads the masked logits (log-probabilities) and then samples
 * pays for it once. No-op without a grammar. */
void sk_sampler_apply_grammar(sk_sampler *s, float *logits);

/* ---- KV cache configuration -------------------------------------------- */

typedef enum sk_cache_policy {
    SK_CACHE_SINK = 0,   /* StreamingLLM: n_sinks first tokens + rolling window */
    SK_CACHE_WINDOW,     /* rolling window only (sink with n_sinks = 0) */
    SK_CACHE_DENSE,      /* keep everything up to n_ctx, then fail */
    SK_CACHE_RECOMPUTE,  /* re-encode the last n_window tokens for every token */
    SK_CACHE_SHIFT,      /* llama.cpp: keep n_keep, drop half the rest when full */
} sk_cache_policy;

typedef enum sk_kv_type { SK_KV_F16 = 0, SK_KV_F32, SK_KV_Q8_0 } sk_kv_type;

/* Ranges of the cache and context parameters: the one place they are
 * defined (the library checks them, the tools parse flags against them). */
#define SK_MAX_SINKS 65536            /* n_sinks (SINK), n_keep (SHIFT): 0 .. */
#define SK_MAX_CACHE_TOKENS (1 << 26) /* n_window, n_ctx: 1 .. */
#define SK_MAX_ROLLBACK 65536         /* n_rollback: 0 .. */
#define SK_MAX_BATCH 8192             /* n_batch: 1 .. */
#define SK_MAX_THREADS 1024           /* n_threads: 0 (all cores) .. */

typedef struct sk_cache_params {
    sk_cache_policy policy;
    int n_sinks;        /* SINK: attention sinks kept forever (default 4) */
    int n_window;       /* SINK/WINDOW/RECOMPUTE/SHIFT: window slots, current token included */
    int n_ctx;          /* DENSE: capacity in tokens */
    sk_kv_type kv_type; /* storage of K and V (sinks are never below F16) */
    int n_rollback;     /* SINK/WINDOW/DENSE: extra ring slots so that the last tokens fed
                           can be taken back (sk_context_rollback); 0 (default) .. 65536 */
} sk_cache_params;

/* ---- context ------------------------------------------------------------ */

typedef struct sk_context_params {
    int n_threads;      /* 0: all online cores */
    int n_batch;        /* largest pre-fill chunk (default 256) */
    int logits_all;     /* keep the logits of every token of the last chunk (sk_logits_ith) */
    int precise;        /* reference arithmetic: weights dequantized to F32, activations
                           not quantized (slow; for tests against an f64 forward pass) */
    sk_cache_params cache;
    struct sk_batch *threads; /* NULL: the context has a thread pool of its own; a batch
                           (sk_batch_new): it runs on that batch's threads instead, so
                           that many contexts fed by sk_decode_batch hold no idle threads
                           (n_threads 0 or the batch's count; the batch must outlive the
                           context; the caller must not feed such a context while
                           another call on the same batch runs) */
} sk_context_params;

void sk_context_params_default(sk_context_params *p);

/* Validate the context fields (threads, batch, and that logits_all is not
 * combined with recompute); err names the field. The cache parameters are
 * validated when the cache is created (sk_context_new). */
sk_status sk_context_params_validate(const sk_context_params *p, const sk_hparams *hp,
                                     sk_error *err);

sk_status sk_context_new(const sk_model *m, const sk_context_params *p, sk_context **out,
                         sk_error *err);
void sk_context_free(sk_context *c);

/* Feed n tokens (a prompt chunk or one generated token). Pre-fills in chunks
 * of n_batch with eviction between chunks, so any length works with the
 * evicting policies. Afterwards sk_logits() holds the logits after the last
 * token. Ids are validated. */
sk_status sk_decode(sk_context *c, const int32_t *tokens, int64_t n, sk_error *err);

/* ---- several contexts in one pass (continuous batching) ----------------
 * A batch holds the activations of up to max_tokens rows and a thread
 * pool; sk_decode_batch feeds several contexts at once, each weight matrix
 * read once for all their rows, each context attending over its own
 * cache. Results are bit-identical to feeding each context alone with
 * sk_decode (in any chunking, on any thread count): every row is computed
 * with the same arithmetic whatever shares the pass. */
#define SK_MAX_BATCH_SEQS 256 /* contexts per sk_decode_batch call */

typedef struct sk_batch sk_batch;

/* A batch for contexts of model m (borrowed) created with n_threads
 * threads (0: all cores, as for a context); max_tokens 1 .. SK_MAX_BATCH rows per call; max_seqs
 * 1 .. SK_MAX_BATCH_SEQS contexts per call. */
sk_status sk_batch_new(const sk_model *m, int n_threads, int max_tokens, int max_seqs, sk_batch **out,
                       sk_error *err);
void sk_batch_free(sk_batch *b);

/* Feed n[j] >= 1 tokens tokens[j] to context ctx[j] for j < n_ctx, in one
 * pass: afterwards each context's sk_logits() holds the logits after its
 * last token, as sk_decode would leave them. The contexts must be
 * distinct, on b's model, created with b's thread count, without
 * logits_all, precise or the recompute policy; n[j] <= the context's
 * n_batch and sum n[j] <= max_tokens. SK_ERR_INVALID (err names the
 * context and the rule) or SK_ERR_FULL (a dense cache) before anything is
 * fed: all or nothing. */
sk_status sk_decode_batch(sk_batch *b, sk_context *const *ctx, const int32_t *const *tokens, const int *n,
                          int n_ctx, sk_error *err);

/* The context's n_batch: the most tokens one pass may feed it. */
int sk_context_batch_size(const sk_context *c);

/* Logits (n_vocab floats) after the last token fed; NULL before any. Not a
 * copy: the pointer is into the context's own buffer, read-only, valid until
 * the next call that feeds, resets, rolls back or loads the context (or
 * frees it). The sampler modifies the logits it is given, so copy them into
 * a buffer of your own (allocated once, outside the token loop) first. */
const float *sk_logits(const sk_context *c);

/* Greedy pick without copying: the lowest id of the largest logit after the
 * last token fed (vectorized); -1 before any. The same id as a sampler with
 * temp <= 0 and no penalties. */
int32_t sk_logits_argmax(const sk_context *c);

/* With logits_all: logits after token i of the last sk_decode call, which
 * must have fed at most n_batch tokens; NULL when i is out of range. Not a
 * copy; valid as long as sk_logits' pointer. */
const float *sk_logits_ith(const sk_context *c, int i);

/* With logits_all: nll[i] = -log softmax(logits of token i of the last
 * sk_decode call)[targets[i]] for i < n, computed on the context's threads
 * (perplexity). A target < 0 or >= n_vocab gives NaN. n must not exceed the
 * rows of the last call. */
sk_status sk_context_nll(sk_context *c, const int32_t *targets, int n, double *nll, sk_error *err);

/* Diagnostics (sinkllm attn): record attention probabilities averaged over
 * heads. buf holds (n_layers, n_tok, n_tok) floats, zeroed by the caller:
 * buf[(k * n_tok + u) * n_tok + p] += the mean over heads of the attention
 * that the query at stream position u pays to the key at stream position p,
 * in layer layers[k], for u, p < n_tok. Slower (attention runs on one
 * thread while recording). buf = NULL stops recording. The buffer and the
 * layer list must outlive the recording. */
sk_status sk_context_capture_attention(sk_context *c, const int *layers, int n_layers, int n_tok,
                                       float *buf, sk_error *err);

/* The embedding of everything fed since the last reset: the model's final
 * normed hidden states (what its output head reads, llama.cpp's
 * embeddings), mean-pooled over the tokens, and L2-normalized when
 * normalize is set. out: n_embd floats. SK_ERR_INVALID when nothing was
 * fed, or when the context can no longer say (after sk_context_rollback,
 * sk_context_load, or once the recompute policy re-encodes its window). */
sk_status sk_context_embedding(const sk_context *c, int normalize, float *out, sk_error *err);

/* ---- sessions: save and restore a context ----------------------------- */

/* Write the context's whole state (KV cache, positions, last logits) and an
 * optional caller blob (e.g. the transcript) to path, crash-safely: the file
 * is written to path.tmp.<pid>, fsynced, renamed over path, and the
 * directory fsynced, so path always holds the old or the new version. The
 * file carries a magic, a version, the model's fingerprint, the cache
 * configuration and a checksum. Symlinks at path are replaced, not
 * followed. */
sk_status sk_context_save(const sk_context *c, const char *path, const void *blob,
                          size_t blob_len, sk_error *err);

/* Restore a state written by sk_context_save into a context of the same
 * model and cache configuration. A truncated or corrupt file (checksum), a
 * foreign model, another configuration or version gives a clear error and
 * leaves the context reset. *blob (malloc'ed, caller frees; NULL when empty)
 * and *blob_len receive the caller blob; pass blob NULL to ignore it. */
sk_status sk_context_load(sk_context *c, const char *path, void **blob, size_t *blob_len,
                          sk_error *err);

/* Read only the cache configuration, batch size and caller blob of a
 * session file (to create a matching context before sk_context_load). The
 * blob is checked by the full load, not here. */
sk_status sk_session_peek(const char *path, sk_cache_params *cache, int *n_batch, void **blob,
                          size_t *blob_len, sk_error *err);

/* Forget everything: empty cache, position 0. */
void sk_context_reset(sk_context *c);

/* Take back the last n tokens fed (n_past -= n), as if they had never been
 * fed, so that a conversation whose last turn is re-tokenized differently
 * continues from the point where the tokens diverge instead of being
 * rebuilt. Possible while the window of the new last position is still
 * intact in the ring: always for DENSE; for SINK/WINDOW while n plus the
 * tokens taken back since the high-water mark stays within
 * n_batch - 1 + cache.n_rollback; never for SHIFT and RECOMPUTE, nor right
 * after sk_context_load. Otherwise SK_ERR_INVALID and nothing changes (the
 * caller rebuilds). Logits are gone until the next sk_decode. */
sk_status sk_context_rollback(sk_context *c, int64_t n, sk_error *err);

typedef struct sk_context_stats {
    int64_t n_past;       /* tokens fed since the last reset (stream position) */
    int64_t n_cached;     /* tokens now in the KV cache */
    int64_t n_evicted;    /* tokens evicted so far */
    int64_t cache_capacity;
    uint64_t kv_bytes;    /* bytes of K/V storage */
    uint64_t scratch_bytes; /* activations, scores, logits: every other buffer of the context */
    int64_t n_shifts;     /* SHIFT: context shifts so far (0 for the other policies); saved
                             and restored with the session */
} sk_context_stats;

void sk_context_get_stats(const sk_context *c, sk_context_stats *s);

/* Check every cache parameter against its range (SK_MAX_*) and the
 * policy's needs; err names the field. sk_context_new calls it. */
sk_status sk_cache_params_validate(const sk_cache_params *p, sk_error *err);

/* Parse "sink" / "window" / "dense" / "recompute" / "shift". */
sk_status sk_cache_policy_parse(const char *s, sk_cache_policy *out, sk_error *err);
const char *sk_cache_policy_name(sk_cache_policy p);

/* ---- session store ------------------------------------------------------
 * Named sessions in one directory, one file per session: DIR/NAME.session,
 * a context's state written by sk_context_save (crash-safe) whose caller
 * blob is the store's record, little-endian:
 *   "SKSTORE\0" (8 bytes), u32 version, u32 chat-template kind,
 *   u64 system-prompt bytes S, u64 transcript tokens N,
 *   version 2 only: i64 conversation turns (>= 0),
 *   S bytes of system prompt (UTF-8, no NUL), N int32 token ids.
 * A record saved without a turn count is written as version 1 (what
 * builds before version 2 read); both versions are read.
 * The transcript is the tokens fed so far, as the program keeps them (a
 * server compares it with the next prompt to reuse the cache; a chat that
 * continues from the cache alone may save none). Reading checks the magic,
 * the version, the kind, every length against the record's size, that the
 * system prompt holds no NUL, and that every token id is < n_vocab.
 *
 * A name is 1 to SK_STORE_NAME_MAX characters of A-Z a-z 0-9 _ -, so it can
 * never leave the directory; any other name is SK_ERR_INVALID. A store
 * holds only its directory and the model, never changes after
 * sk_store_open, and keeps no file open: calls on different names may run
 * on different threads at once (two calls on the same name at once are the
 * caller's to prevent). */

#define SK_STORE_NAME_MAX 64

typedef struct sk_store sk_store;

/* What a session file holds besides the cache. From sk_store_peek and
 * sk_store_load; release with sk_session_info_free. */
typedef struct sk_session_info {
    sk_chat_kind chat_kind;
    char *system;           /* the system prompt, NUL-terminated; "" when none (malloc'ed) */
    int32_t *tokens;        /* (n_tokens) the transcript, every id < n_vocab; NULL when empty */
    int64_t n_tokens;
    int64_t n_turns;        /* conversation turns the saver counted; -1 when it recorded none */
    sk_cache_params cache;  /* the saved context's cache configuration and batch size: */
    int n_batch;            /*   a context to load into must be created with them */
} sk_session_info;

/* Is name a valid session name ([A-Za-z0-9_-]{1,64})? NULL is not. */
int sk_store_valid_name(const char *name);

/* A store of sessions of model m in directory dir (created, mode 0700, by
 * the first save when missing; its parent must exist). m must outlive the
 * store. Checks nothing on disk. dir NULL: a store of no directory, for the
 * _bytes functions only (the file functions answer SK_ERR_INVALID, list
 * and remove_stale find nothing). */
sk_status sk_store_open(const char *dir, const sk_model *m, sk_store **out, sk_error *err);
void sk_store_free(sk_store *st);

/* The file of session name ("DIR/NAME.session"), snprintf-style into buf
 * (for messages). SK_ERR_INVALID for a bad name or a path that does not fit. */
sk_status sk_store_path(const sk_store *st, const char *name, char *buf, size_t cap,
                        sk_error *err);

/* Save context c as session name with its record: the chat-template kind,
 * the system prompt (NULL or "" = none) and the transcript
 * tokens[0..n_tokens) (ids in [0, n_vocab): SK_ERR_INVALID otherwise).
 * Replaces an older session of that name atomically: the file always holds
 * the old or the new session, even if the process dies mid-save. */
sk_status sk_store_save(const sk_store *st, const char *name, const sk_context *c,
                        sk_chat_kind chat_kind, const char *system, const int32_t *tokens,
                        int64_t n_tokens, sk_error *err);
/* sk_store_save, recording also the conversation's turn count n_turns
 * (>= 0; < 0 records none), which sk_store_peek and sk_store_load give back
 * in info->n_turns. */
sk_status sk_store_save_turns(const sk_store *st, const char *name, const sk_context *c,
                              sk_chat_kind chat_kind, const char *system, const int32_t *tokens,
                              int64_t n_tokens, int64_t n_turns, sk_error *err);

/* Read session name's record and cache configuration without its cache, to
 * create a matching context (info->cache, info->n_batch) before
 * sk_store_load. A missing session is SK_ERR_IO ("No such file or
 * directory"); anything but a regular file, a file that is not a session,
 * or a bad record is an error naming the session. */
sk_status sk_store_peek(const sk_store *st, const char *name, sk_session_info *info,
                        sk_error *err);

/* Restore session name into c (a context of the store's model with the
 * saved cache configuration, see sk_store_peek) and, when info is not NULL,
 * fill info as sk_store_peek does. On any error c is reset and info holds
 * nothing to free. A restored context cannot be rolled back past its
 * restore point (sk_context_rollback), and has no logits until its next
 * sk_decode: a store session keeps only the cache rows that later tokens
 * can read (the prefix and the visible window), not the last logits. */
sk_status sk_store_load(const sk_store *st, const char *name, sk_context *c,
                        sk_session_info *info, sk_error *err);

/* The same session in memory, for a store of the caller's own (sinkllm
 * serve keeps them in Redis): sk_store_encode gives the bytes that
 * sk_store_save writes to a file (*out malloc'ed, the caller frees);
 * sk_store_peek_bytes and sk_store_load_bytes read such bytes with the
 * checks of sk_store_peek and sk_store_load (name only names the session in
 * messages and must be valid for encode). */
sk_status sk_store_encode(const sk_store *st, const char *name, const sk_context *c,
                          sk_chat_kind chat_kind, const char *system, const int32_t *tokens,
                          int64_t n_tokens, void **out, size_t *out_len, sk_error *err);
sk_status sk_store_peek_bytes(const sk_store *st, const char *name, const void *buf, size_t len,
                              sk_session_info *info, sk_error *err);
sk_status sk_store_load_bytes(const sk_store *st, const char *name, const void *buf, size_t len,
                              sk_context *c, sk_session_info *info, sk_error *err);

/* Release what info holds (not info itself) and clear it; NULL is a no-op. */
void sk_session_info_free(sk_session_info *info);

/* Is there a session name (a regular file)? 0 for a bad name. */
int sk_store_exists(const sk_store *st, const char *name);

/* Delete session name. SK_ERR_IO when there is none. */
sk_status sk_store_delete(const sk_store *st, const char *name, sk_error *err);

/* The names of the sessions in the directory, sorted (byte order):
 * *names is a malloc'ed array of *n malloc'ed strings (free with
 * sk_store_list_free). A missing directory gives none. Files whose names
 * are not NAME.session with a valid NAME are not listed. */
sk_status sk_store_list(const sk_store *st, char ***names, int64_t *n, sk_error *err);
void sk_store_list_free(char **names, int64_t n);

/* Remove the temporary files (NAME.session.tmp.PID) that saves interrupted
 * by a crash left behind, those whose writing process is gone; *n_removed
 * (may be NULL) counts them. A missing directory removes nothing. */
sk_status sk_store_remove_stale(const sk_store *st, int *n_removed, sk_error *err);

/* ---- system information ------------------------------------------------ */

typedef struct sk_system_info {
    const char *version;  /* SINKLLM_VERSION */
    const char *isa;      /* the kernel tier in use: "amx", "avx512", "avx2" or "scalar":
                             the best the CPU has, or SINKLLM_ISA=NAME's (a tier at or
                             below the best; SINKLLM_SCALAR=1 is SINKLLM_ISA=scalar) */
    int n_cores;          /* online CPUs: the threads a context uses with n_threads 0 */
    /* CPU features (the hardware's, whatever SINKLLM_ISA says): 1 or 0 */
    int cpu_avx2;         /* AVX2 + FMA + F16C: the "avx2" tier can run */
    int cpu_avx512vnni;   /* AVX-512 F/BW/VL/DQ + VNNI: the "avx512" tier can run */
    int cpu_avx512bf16;   /* AVX512_BF16 (no kernel uses it yet) */
    int cpu_avx512fp16;   /* AVX512_FP16 (no kernel uses it yet) */
    int cpu_amx;          /* AMX-TILE + AMX-INT8, tile data granted to this process:
                             the "amx" tier can run (no AMX kernels yet, see isa_note) */
    int nopack;           /* SINKLLM_NOPACK=1: weights stay in the file layout */
    const char *isa_note; /* "" or what the tier's name does not say: for "amx",
                             "no AMX kernels yet: the avx512 kernels"; for
                             "avx512" on a CPU that runs 512 bits whole (Intel,
                             AMD Zen 5), "512-bit attention and Q6_K kernels" */
    const char *isa_error; /* NULL, or why SINKLLM_ISA / SINKLLM_SCALAR could not be
                             honoured (unknown tier, one the CPU lacks): isa is then the
                             best tier and sk_model_load fails with this message */
    const char *isa_best; /* the best tier the CPU has */
} sk_system_info;

/* Fill info (strings are static: valid for the life of the process). Picks
 * the kernel set first if nothing has yet (thread-safe). */
void sk_system_info_get(sk_system_info *info);

#ifdef __cplusplus
}
#endif
#endif
