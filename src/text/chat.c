/* chat.c - chat templates (see chat.h): detection from the Jinja text and
 * hand-written renderers.
 *
 * A conversation is first laid out as a list of segments, each one of
 *   TEXT   plain text (template text or message content),
 *   MARK   a template marker that is one special token in the vocabularies
 *          made for that format ("<|im_start|>", "[INST]", ...),
 *   BOS    the vocabulary's BOS token (bos_token in the Jinja text),
 *   VBOS   BOS only if the vocabulary adds one to every text (add_bos),
 *   EOS    the vocabulary's EOS token (eos_token in the Jinja text).
 * The same list gives the prompt text (sk_chat_render_text) and the ids
 * (sk_chat_render). For ids, a MARK that the vocabulary has as a CONTROL (or
 * UNKNOWN) token becomes that id; any other MARK is plain text, as it would
 * be if the whole prompt were tokenized with special-token parsing. Runs of
 * adjacent plain text are tokenized together with parse_special = 0, so the
 * ids equal those of tokenizing the prompt text with parse_special = 1,
 * except that special-token text inside a message stays plain text.
 *
 * The formats, with {x} the content of message x (verified against the
 * Hugging Face templates and llama.cpp's llm_chat_apply_template):
 *
 * ChatML ("chatml"):
 *     <|im_start|>{role}\n{content}<|im_end|>\n        per message
 *     <|im_start|>assistant\n                          generation prompt
 *   SmolLM2 ("smollm2"): ChatML, and when the first message is not a
 *   system message, first
 *     <|im_start|>system\nYou are a helpful AI assistant named SmolLM,
 *     trained by Hugging Face<|im_end|>\n
 *   Any order of roles.
 *
 * Llama-2 ("llama2", meta-llama/Llama-2-*-chat-hf):
 *     <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s>
 *     <s>[INST] {user} [/INST]
 *   user and assistant contents stripped of surrounding whitespace (with a
 *   system message the template strips the joined "<<SYS>>...{user}", so
 *   the user's leading whitespace stays). No generation prompt: "[/INST]"
 *   ends the prompt.
 *
 * Mistral ("mistral", the v3 layout of Mistral-7B-Instruct-v0.3/Mixtral):
 *     <s>[INST] {system}\n\n{user}[/INST] {assistant}</s>[INST] {user}[/INST]
 *   assistant content stripped. The system message goes into the first
 *   user turn (v0.3's template puts it into the last one, which would
 *   change earlier tokens every turn; llama.cpp places it first, as we do).
 *   No generation prompt.
 *
 * Llama-3 ("llama3"):
 *     <|begin_of_text|>
 *     <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>   per message
 *     <|start_header_id|>assistant<|end_header_id|>\n\n                 generation prompt
 *   contents stripped. Any order of roles.
 *
 * Gemma ("gemma"):
 *     <bos><start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n
 *     <start_of_turn>model\n{assistant}<end_of_turn>\n
 *     <start_of_turn>model\n                            generation prompt
 *   all contents stripped, the system message (Gemma has none) put before
 *   the first user message, as llama.cpp does (Gemma 3's template does
 *   not strip the system message).
 *
 * Zephyr ("zephyr", HuggingFaceH4/zephyr-7b-beta):
 *     <|system|>\n{system}</s>\n<|user|>\n{user}</s>\n<|assistant|>\n{assistant}</s>\n
 *     <|assistant|>\n                                   generation prompt
 *   Any order of roles.
 *
 * Phi-3 ("phi3", microsoft/Phi-3-mini-*-instruct):
 *     <|{role}|>\n{content}<|end|>\n                     per message
 *     <|assistant|>\n                                   generation prompt
 *   Any order of roles. Without a generation prompt the Hugging Face
 *   template appends eos_token; llama.cpp does not, nor do we (the turn is
 *   closed by <|end|>). llama.cpp gives Phi-3's special tokens RSTRIP (by
 *   general.name): the "\n" after each marker disappears from the ids.
 *
 * Checked against llama.cpp's llama_chat_apply_template (text) and its
 * tokenization of that text (ids) for chatml, llama3, mistral (as
 * "mistral-v3"), gemma and phi3 by tests/test_chat.c on
 * tests/golden/chat/templates.json. Llama-2 and Zephyr follow the Hugging
 * Face templates, which llama.cpp's built-ins do not (" </s><s>[INST]" per
 * Llama-2 turn; Zephyr's end is eos_token, not "<|endoftext|>").
 *
 * Llama-2, Mistral and Gemma require: an optional system message first,
 * then user and assistant alternating, starting with user (their Jinja
 * templates raise an exception otherwise). "Stripped" means ASCII
 * whitespace (Jinja's trim also strips Unicode spaces). */
#include "chat.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SMOLLM2_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

static const char *const kind_names[SK_CHAT_N_KINDS] = {
    [SK_CHAT_CHATML] = "chatml", [SK_CHAT_SMOLLM2] = "smollm2", [SK_CHAT_LLAMA2] = "llama2",
    [SK_CHAT_LLAMA3] = "llama3", [SK_CHAT_MISTRAL] = "mistral", [SK_CHAT_GEMMA] = "gemma",
    [SK_CHAT_ZEPHYR] = "zephyr", [SK_CHAT_PHI3] = "phi3",
};

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };
static const char *const role_names[] = {"system", "user", "assistant"};

typedef enum { SEG_TEXT, SEG_MARK, SEG_BOS, SEG_VBOS, SEG_EOS, SEG_LEAD } seg_type; /* LEAD: sk_tokenizer_lead */

typedef struct seg {
    const char *s; /* not owned: a literal or message content */
    size_t len;
    seg_type type;
} seg;

typedef struct seg_list {
    seg *v;
    size_t n, cap;
    bool oom;
} seg_list;

/* ------------------------------------------------------------------------
 * names and detection
 * ---------------------------------------------------------------------- */

sk_status sk_chat_kind_parse(const char *name, sk_chat_kind *out, sk_error *err) {
    if (!out) return sk_error_set(err, SK_ERR_INVALID, "chat template: no output");
    if (name) {
        for (int k = 0; k < SK_CHAT_N_KINDS; k++) {
            if (strcmp(name, kind_names[k]) == 0) {
                *out = (sk_chat_kind)k;
                return SK_OK;
            }
        }
    }
    return sk_error_set(err, SK_ERR_INVALID,
                        "unknown chat template '%.64s' (chatml, smollm2, llama2, llama3, mistral, gemma, zephyr, phi3)",
                        name ? name : "(null)");
}

const char *sk_chat_kind_name(sk_chat_kind k) {
    if ((int)k < 0 || k >= SK_CHAT_N_KINDS) return "unknown";
    return kind_names[k];
}

static bool has(const char *s, const char *needle) { return strstr(s, needle) != NULL; }

sk_chat_kind sk_chat_detect(const char *jinja, int *recognised) {
    sk_chat_kind k = SK_CHAT_CHATML;
    int ok = 0;
    if (jinja) {
        /* The checks follow llama.cpp's llm_chat_detect_template where it
         * covers our families; formats we do not implement (Phi-4 and SmolVLM
         * use <|im_start|> differently) stay unrecognised. */
        ok = 1;
        if (sk_chat_kind_parse(jinja, &k, NULL) == SK_OK) {
            /* a bare kind name */
        } else if (has(jinja, "<|im_start|>")) {
            if (has(jinja, "<|im_sep|>") || has(jinja, "<end_of_utterance>")) ok = 0;
            else k = has(jinja, SMOLLM2_SYSTEM) ? SK_CHAT_SMOLLM2 : SK_CHAT_CHATML;
        } else if (has(jinja, "<|start_header_id|>") && has(jinja, "<|end_header_id|>")) {
            k = SK_CHAT_LLAMA3;
        } else if (has(jinja, "[INST]")) {
            /* Llama-2-chat's template has the <<SYS>> block; Mistral's
             * (v0.1 to v0.3, Mixtral, and "[SYSTEM_PROMPT]" v7, rendered in
             * the v3 layout) do not. */
            k = has(jinja, "<<SYS>>") ? SK_CHAT_LLAMA2 : SK_CHAT_MISTRAL;
        } else if (has(jinja, "<start_of_turn>")) {
            k = SK_CHAT_GEMMA;
        } else if (has(jinja, "<|assistant|>") && has(jinja, "<|end|>")) {
            k = SK_CHAT_PHI3;
        } else if (has(jinja, "<|user|>") && has(jinja, "<|assistant|>")) {
            k = SK_CHAT_ZEPHYR;
        } else {
            ok = 0;
        }
        if (!ok) k = SK_CHAT_CHATML;
    }
    if (recognised) *recognised = ok;
    return k;
}

/* a CONTROL (or USER_DEFINED) token with this text in the vocabulary */
static bool vocab_has(const sk_tokenizer *tok, const char *text) {
    int32_t id = tok ? sk_token_lookup(tok, text, strlen(text)) : -1;
    int ty = id >= 0 ? sk_token_type(tok, id) : -1;
    return ty == SK_TOKTYPE_CONTROL || ty == SK_TOKTYPE_USER_DEFINED;
}

sk_chat_kind sk_chat_detect_model(const char *jinja, const char *arch, const sk_tokenizer *tok, int *source) {
    int rec = 0;
    if (jinja && *jinja) {
        sk_chat_kind k = sk_chat_detect(jinja, &rec);
        if (source) *source = rec ? SK_CHAT_FROM_TEMPLATE : SK_CHAT_FROM_NONE;
        return k;
    }
    static const struct {
        const char *arch;
        sk_chat_kind kind;
    } by_arch[] = {
        {"gemma", SK_CHAT_GEMMA}, {"gemma2", SK_CHAT_GEMMA}, {"gemma3", SK_CHAT_GEMMA},
        {"phi3", SK_CHAT_PHI3},   {"qwen2", SK_CHAT_CHATML}, {"qwen2moe", SK_CHAT_CHATML},
        {"qwen3", SK_CHAT_CHATML}, {"qwen3moe", SK_CHAT_CHATML},
    };
    sk_chat_kind k = SK_CHAT_CHATML;
    int from = SK_CHAT_FROM_MODEL;
    size_t i = 0;
    for (; arch && i < sizeof by_arch / sizeof by_arch[0]; i++)
        if (strcmp(arch, by_arch[i].arch) == 0) break;
    if (arch && i < sizeof by_arch / sizeof by_arch[0]) k = by_arch[i].kind;
    else if (vocab_has(tok, "<|start_header_id|>") && vocab_has(tok, "<|eot_id|>")) k = SK_CHAT_LLAMA3;
    else if (vocab_has(tok, "<|im_start|>") && vocab_has(tok, "<|im_end|>")) k = SK_CHAT_CHATML;
    else if (vocab_has(tok, "<start_of_turn>") && vocab_has(tok, "<end_of_turn>")) k = SK_CHAT_GEMMA;
    else if (vocab_has(tok, "<|user|>") && vocab_has(tok, "<|assistant|>") && vocab_has(tok, "<|end|>")) k = SK_CHAT_PHI3;
    else if (vocab_has(tok, "[INST]") && vocab_has(tok, "[/INST]")) k = SK_CHAT_MISTRAL;
    else from = SK_CHAT_FROM_NONE;
    if (source) *source = from;
    return k;
}

/* ------------------------------------------------------------------------
 * layout
 * ---------------------------------------------------------------------- */

static void seg_push(seg_list *l, seg_type type, const char *s, size_t len) {
    if (l->oom) return;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 32;
        seg *v = nc <= SIZE_MAX / sizeof *v ? realloc(l->v, nc * sizeof *v) : NULL;
        if (!v) {
            l->oom = true;
            return;
        }
        l->v = v;
        l->cap = nc;
    }
    l->v[l->n++] = (seg){s, len, type};
}

static void text(seg_list *l, const char *s) { seg_push(l, SEG_TEXT, s, strlen(s)); }
static void mark(seg_list *l, const char *s) { seg_push(l, SEG_MARK, s, strlen(s)); }

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* content with surrounding whitespace removed (lead: on the left too) */
static void text_trimmed(seg_list *l, const char *s, bool lead) {
    size_t len = strlen(s);
    while (lead && len > 0 && is_ws(*s)) s++, len--;
    while (len > 0 && is_ws(s[len - 1])) len--;
    seg_push(l, SEG_TEXT, s, len);
}

static int role_of(const char *r) {
    for (int i = 0; i < 3; i++)
        if (strcmp(r, role_names[i]) == 0) return i;
    return -1;
}

/* Check arguments, roles and (where the format needs it) their order. */
static sk_status validate(sk_chat_kind k, const sk_chat_msg *msgs, int n, int flags, sk_error *err) {
    if ((int)k < 0 || k >= SK_CHAT_N_KINDS) return sk_error_set(err, SK_ERR_INVALID, "chat: bad template kind %d", (int)k);
    if (n < 0 || (n > 0 && !msgs)) return sk_error_set(err, SK_ERR_INVALID, "chat %s: bad message list", kind_names[k]);
    if (flags & ~(SK_CHAT_ADD_GEN | SK_CHAT_CONTINUE))
        return sk_error_set(err, SK_ERR_INVALID, "chat %s: unknown flags 0x%x", kind_names[k], (unsigned)flags);
    for (int i = 0; i < n; i++) {
        if (!msgs[i].role) return sk_error_set(err, SK_ERR_INVALID, "chat %s: message %d has no role", kind_names[k], i);
        if (!msgs[i].content)
            return sk_error_set(err, SK_ERR_INVALID, "chat %s: message %d has no content", kind_names[k], i);
        if (role_of(msgs[i].role) < 0)
            return sk_error_set(err, SK_ERR_INVALID,
                                "chat %s: message %d has unknown role '%.40s' (system, user or assistant)",
                                kind_names[k], i, msgs[i].role);
    }
    if (k != SK_CHAT_LLAMA2 && k != SK_CHAT_MISTRAL && k != SK_CHAT_GEMMA) return SK_OK;
    int first = n > 0 && role_of(msgs[0].role) == ROLE_SYSTEM;
    if (first && n == 1)
        return sk_error_set(err, SK_ERR_INVALID, "chat %s: the system message must be followed by a user message",
                            kind_names[k]);
    for (int i = first; i < n; i++) {
        int want = (i - first) % 2 == 0 ? ROLE_USER : ROLE_ASSISTANT;
        if (role_of(msgs[i].role) != want)
            return sk_error_set(err, SK_ERR_INVALID,
                                "chat %s: message %d is '%s' where '%s' was expected (an optional first system "
                                "message, then user and assistant alternating)",
                                kind_names[k], i, msgs[i].role, role_names[want]);
    }
    return SK_OK;
}

/* Lay out a whole validated conversation (see the formats above). */
static void layout(sk_chat_kind k, const sk_chat_msg *msgs, int n, int flags, seg_list *l) {
    bool gen = flags & SK_CHAT_ADD_GEN, start = !(flags & SK_CHAT_CONTINUE);
    int first = n > 0 && role_of(msgs[0].role) == ROLE_SYSTEM; /* index of the first non-system message */
    const char *sys = first ? msgs[0].content : NULL;
    if (start) seg_push(l, SEG_LEAD, NULL, 0); /* a model's sink token starts every conversation */
    switch (k) {
    case SK_CHAT_CHATML:
    case SK_CHAT_SMOLLM2:
        if (start) seg_push(l, SEG_VBOS, NULL, 0);
        if (k == SK_CHAT_SMOLLM2 && start && n > 0 && !sys) {
            mark(l, "<|im_start|>");
            text(l, "system\n" SMOLLM2_SYSTEM);
            mark(l, "<|im_end|>");
            text(l, "\n");
        }
        for (int i = 0; i < n; i++) {
            mark(l, "<|im_start|>");
            text(l, msgs[i].role);
            text(l, "\n");
            text(l, msgs[i].content);
            mark(l, "<|im_end|>");
            text(l, "\n");
        }
        if (gen) {
            mark(l, "<|im_start|>");
            text(l, "assistant\n");
        }
        break;
    case SK_CHAT_LLAMA2:
        for (int i = first; i < n; i++) {
            if (role_of(msgs[i].role) == ROLE_USER) {
                seg_push(l, SEG_BOS, NULL, 0);
                mark(l, "[INST]");
                text(l, " ");
                if (i == first && sys) {
                    /* strip() of "<<SYS>>\n{system}\n<</SYS>>\n\n{user}" */
                    const char *u = msgs[i].content;
                    size_t ul = strlen(u);
                    while (ul > 0 && is_ws(u[ul - 1])) ul--;
                    text(l, "<<SYS>>\n");
                    text(l, sys);
                    text(l, ul > 0 ? "\n<</SYS>>\n\n" : "\n<</SYS>>");
                    seg_push(l, SEG_TEXT, u, ul);
                } else {
                    text_trimmed(l, msgs[i].content, true);
                }
                text(l, " ");
                mark(l, "[/INST]");
            } else {
                text(l, " ");
                text_trimmed(l, msgs[i].content, true);
                text(l, " ");
                seg_push(l, SEG_EOS, NULL, 0);
            }
        }
        break;
    case SK_CHAT_MISTRAL:
        if (start) seg_push(l, SEG_BOS, NULL, 0);
        for (int i = first; i < n; i++) {
            if (role_of(msgs[i].role) == ROLE_USER) {
                mark(l, "[INST]");
                text(l, " ");
                if (i == first && sys) {
                    text(l, sys);
                    text(l, "\n\n");
                }
                text(l, msgs[i].content);
                mark(l, "[/INST]");
            } else {
                text(l, " ");
                text_trimmed(l, msgs[i].content, true);
                seg_push(l, SEG_EOS, NULL, 0);
            }
        }
        break;
    case SK_CHAT_LLAMA3:
        if (start) seg_push(l, SEG_BOS, NULL, 0);
        for (int i = 0; i < n; i++) {
            mark(l, "<|start_header_id|>");
            text(l, msgs[i].role);
            mark(l, "<|end_header_id|>");
            text(l, "\n\n");
            text_trimmed(l, msgs[i].content, true);
            mark(l, "<|eot_id|>");
        }
        if (gen) {
            mark(l, "<|start_header_id|>");
            text(l, "assistant");
            mark(l, "<|end_header_id|>");
            text(l, "\n\n");
        }
        break;
    case SK_CHAT_GEMMA:
        if (start) seg_push(l, SEG_BOS, NULL, 0);
        for (int i = first; i < n; i++) {
            mark(l, "<start_of_turn>");
            text(l, role_of(msgs[i].role) == ROLE_USER ? "user\n" : "model\n");
            if (i == first && sys) {
                text_trimmed(l, sys, true);
                text(l, "\n\n");
            }
            text_trimmed(l, msgs[i].content, true);
            mark(l, "<end_of_turn>");
            text(l, "\n");
        }
        if (gen) {
            mark(l, "<start_of_turn>");
            text(l, "model\n");
        }
        break;
    case SK_CHAT_ZEPHYR:
        if (start) seg_push(l, SEG_VBOS, NULL, 0);
        for (int i = 0; i < n; i++) {
            int r = role_of(msgs[i].role);
            mark(l, r == ROLE_SYSTEM ? "<|system|>" : r == ROLE_USER ? "<|user|>" : "<|assistant|>");
            text(l, "\n");
            text(l, msgs[i].content);
            seg_push(l, SEG_EOS, NULL, 0);
            text(l, "\n");
        }
        if (gen) {
            mark(l, "<|assistant|>");
            text(l, "\n");
        }
        break;
    case SK_CHAT_PHI3:
        if (start) seg_push(l, SEG_VBOS, NULL, 0);
        for (int i = 0; i < n; i++) {
            int r = role_of(msgs[i].role);
            mark(l, r == ROLE_SYSTEM ? "<|system|>" : r == ROLE_USER ? "<|user|>" : "<|assistant|>");
            text(l, "\n");
            text(l, msgs[i].content);
            mark(l, "<|end|>");
            text(l, "\n");
        }
        if (gen) {
            mark(l, "<|assistant|>");
            text(l, "\n");
        }
        break;
    default:
        break;
    }
}

/* the end-of-turn text after an assistant reply (documented in chat.h) */
static void layout_turn_end(sk_chat_kind k, seg_list *l) {
    switch (k) {
    case SK_CHAT_CHATML:
    case SK_CHAT_SMOLLM2:
        mark(l, "<|im_end|>");
        text(l, "\n");
        break;
    case SK_CHAT_LLAMA2:
        text(l, " ");
        seg_push(l, SEG_EOS, NULL, 0);
        break;
    case SK_CHAT_LLAMA3: mark(l, "<|eot_id|>"); break;
    case SK_CHAT_MISTRAL: seg_push(l, SEG_EOS, NULL, 0); break;
    case SK_CHAT_GEMMA:
        mark(l, "<end_of_turn>");
        text(l, "\n");
        break;
    case SK_CHAT_ZEPHYR:
        seg_push(l, SEG_EOS, NULL, 0);
        text(l, "\n");
        break;
    case SK_CHAT_PHI3:
        mark(l, "<|end|>");
        text(l, "\n");
        break;
    default: break;
    }
}

/* how the family writes bos_token / eos_token in its prompt text */
static const char *bos_text(sk_chat_kind k) {
    return k == SK_CHAT_LLAMA3 ? "<|begin_of_text|>" : k == SK_CHAT_GEMMA ? "<bos>" : "<s>";
}
static const char *eos_text(sk_chat_kind k) {
    return k == SK_CHAT_LLAMA3 ? "<|end_of_text|>" : k == SK_CHAT_GEMMA ? "<eos>" : "</s>";
}

/* ------------------------------------------------------------------------
 * segments -> ids
 * ---------------------------------------------------------------------- */

typedef struct emitter {
    const sk_tokenizer *tok;
    int32_t *out;
    int64_t cap, n;
    char *run; /* plain text not yet tokenized */
    size_t run_len, run_cap;
    bool strip_ws; /* the last id drops the whitespace after it (SK_STRIP_RIGHT) */
} emitter;

static bool is_c_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static sk_status run_append(emitter *e, const char *s, size_t len, sk_error *err) {
    while (e->strip_ws && len > 0 && is_c_space(*s)) s++, len--;
    if (len == 0) return SK_OK;
    e->strip_ws = false;
    if (len > SIZE_MAX / 2 - e->run_len) return sk_error_set(err, SK_ERR_NOMEM, "chat: prompt too long");
    if (e->run_len + len > e->run_cap) {
        size_t nc = e->run_cap ? e->run_cap : 256;
        while (nc < e->run_len + len) nc *= 2;
        char *r = realloc(e->run, nc);
        if (!r) return sk_error_set(err, SK_ERR_NOMEM, "chat: out of memory");
        e->run = r;
        e->run_cap = nc;
    }
    memcpy(e->run + e->run_len, s, len);
    e->run_len += len;
    return SK_OK;
}

static sk_status run_flush(emitter *e, sk_error *err) {
    if (e->run_len == 0) return SK_OK;
    int64_t m = 0, room = e->n < e->cap ? e->cap - e->n : 0;
    sk_status st = sk_tokenize(e->tok, e->run, e->run_len, 0, 0, room > 0 ? e->out + e->n : NULL, room, &m, err);
    if (st) return st;
    e->n += m;
    e->run_len = 0;
    return SK_OK;
}

/* A special token: as llama.cpp's parser does, one with SK_STRIP_LEFT
 * drops the whitespace before it, one with SK_STRIP_RIGHT the whitespace
 * after it (up to the next token that is not plain text). */
static sk_status emit_id(emitter *e, int32_t id, sk_error *err) {
    int strip = sk_tokenizer_token_strip(e->tok, id);
    if (strip & SK_STRIP_LEFT)
        while (e->run_len > 0 && is_c_space(e->run[e->run_len - 1])) e->run_len--;
    sk_status st = run_flush(e, err);
    if (st) return st;
    if (e->n < e->cap) e->out[e->n] = id;
    e->n++;
    e->strip_ws = (strip & SK_STRIP_RIGHT) != 0;
    return SK_OK;
}

/* a marker: its special token when the vocabulary has one, else plain text */
static sk_status emit_mark(emitter *e, const char *s, size_t len, sk_error *err) {
    int32_t id = sk_token_lookup(e->tok, s, len);
    int ty = id >= 0 ? sk_token_type(e->tok, id) : -1;
    if (ty == SK_TOKTYPE_CONTROL || ty == SK_TOKTYPE_UNKNOWN) return emit_id(e, id, err);
    return run_append(e, s, len, err);
}


static sk_status segs_to_ids(const sk_tokenizer *tok, sk_chat_kind k, const seg_list *l, int32_t *out, int64_t cap,
                             int64_t *n_out, sk_error *err) {
    emitter e = {.tok = tok, .out = out, .cap = cap};
    sk_status st = SK_OK;
    int32_t bos = sk_tokenizer_bos(tok), eos = sk_tokenizer_eos(tok);
    for (size_t i = 0; i < l->n && st == SK_OK; i++) {
        const seg *s = &l->v[i];
        switch (s->type) {
        case SEG_TEXT: st = run_append(&e, s->s, s->len, err); break;
        case SEG_MARK: st = emit_mark(&e, s->s, s->len, err); break;
        case SEG_VBOS:
            if (sk_tokenizer_add_bos(tok) && bos >= 0) st = emit_id(&e, bos, err);
            break;
        case SEG_LEAD:
            if (sk_tokenizer_lead(tok) >= 0) st = emit_id(&e, sk_tokenizer_lead(tok), err);
            break;
        case SEG_BOS:
            if (bos >= 0) st = emit_id(&e, bos, err); /* a vocabulary without BOS: none */
            break;
        case SEG_EOS:
            if (eos >= 0) st = emit_id(&e, eos, err);
            else st = emit_mark(&e, eos_text(k), strlen(eos_text(k)), err);
            break;
        }
    }
    if (st == SK_OK) st = run_flush(&e, err);
    free(e.run);
    if (st == SK_OK) *n_out = e.n;
    return st;
}

/* ------------------------------------------------------------------------
 * public renderers
 * ---------------------------------------------------------------------- */

sk_status sk_chat_render(const sk_tokenizer *tok, sk_chat_kind k, const sk_chat_msg *msgs, int n_msgs, int flags,
                         int32_t *out, int64_t cap, int64_t *n_out, sk_error *err) {
    if (n_out) *n_out = 0;
    if (!tok || !n_out || cap < 0 || (!out && cap > 0))
        return sk_error_set(err, SK_ERR_INVALID, "chat: bad arguments");
    sk_status st = validate(k, msgs, n_msgs, flags, err);
    if (st) return st;
    seg_list l = {0};
    layout(k, msgs, n_msgs, flags, &l);
    st = l.oom ? sk_error_set(err, SK_ERR_NOMEM, "chat: out of memory") : segs_to_ids(tok, k, &l, out, cap, n_out, err);
    free(l.v);
    return st;
}

sk_status sk_chat_render_turn_end(const sk_tokenizer *tok, sk_chat_kind k, int32_t *out, int64_t cap,
                                  int64_t *n_out, sk_error *err) {
    if (n_out) *n_out = 0;
    if (!tok || !n_out || cap < 0 || (!out && cap > 0))
        return sk_error_set(err, SK_ERR_INVALID, "chat: bad arguments");
    if ((int)k < 0 || k >= SK_CHAT_N_KINDS) return sk_error_set(err, SK_ERR_INVALID, "chat: bad template kind %d", (int)k);
    seg_list l = {0};
    layout_turn_end(k, &l);
    sk_status st =
        l.oom ? sk_error_set(err, SK_ERR_NOMEM, "chat: out of memory") : segs_to_ids(tok, k, &l, out, cap, n_out, err);
    free(l.v);
    return st;
}

sk_status sk_chat_render_text(sk_chat_kind k, const sk_chat_msg *msgs, int n_msgs, int flags, char *buf,
                              size_t cap, size_t *n_out, sk_error *err) {
    if (n_out) *n_out = 0;
    if (!n_out || (!buf && cap > 0)) return sk_error_set(err, SK_ERR_INVALID, "chat: bad arguments");
    sk_status st = validate(k, msgs, n_msgs, flags, err);
    if (st) return st;
    seg_list l = {0};
    layout(k, msgs, n_msgs, flags, &l);
    if (l.oom) {
        free(l.v);
        return sk_error_set(err, SK_ERR_NOMEM, "chat: out of memory");
    }
    size_t total = 0;
    for (size_t i = 0; i < l.n; i++) {
        const char *s = l.v[i].s;
        size_t len = l.v[i].len;
        if (l.v[i].type == SEG_BOS) s = bos_text(k), len = strlen(s);
        else if (l.v[i].type == SEG_EOS) s = eos_text(k), len = strlen(s);
        else if (l.v[i].type == SEG_VBOS || l.v[i].type == SEG_LEAD) len = 0;
        if (len > SIZE_MAX - 1 - total) {
            free(l.v);
            return sk_error_set(err, SK_ERR_INVALID, "chat: prompt too long");
        }
        if (len > 0 && cap > 0 && total < cap - 1) {
            size_t w = cap - 1 - total < len ? cap - 1 - total : len;
            memcpy(buf + total, s, w);
        }
        total += len;
    }
    if (cap > 0) buf[total < cap - 1 ? total : cap - 1] = '\0';
    free(l.v);
    *n_out = total;
    return SK_OK;
}
