/* server_tools.c - tool calls: the request's tools into the prompt, the
 * reply's <tool_call> blocks back into OpenAI's tool_calls. The format and
 * the error convention are described in server_tools.h. */
#include "server_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_buf.h"
#include "server_request.h"

#define fail srv_perr_set

/* A growing NUL-terminated string; oom set once an append failed. */
typedef struct sbuf {
    char *b;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *s, const char *p, size_t k) {
    if (!s->oom && srv_append(&s->b, &s->n, &s->cap, p, k)) s->oom = 1;
}
static void sb_str(sbuf *s, const char *p) { sb_put(s, p, strlen(p)); }

/* A JSON value as Python's json.dumps writes it (what the Hugging Face
 * `tojson` filter gives): ", " and ": " separators, keys in their order,
 * UTF-8 kept. Appended to s. */
static void sb_json(sbuf *s, json_t *v) {
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_INDENT(0));
    if (!t) {
        s->oom = 1;
        return;
    }
    sb_str(s, t);
    free(t);
}

static const char block_head[] =
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
static const char block_tail[] =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>";

static int valid_name(const char *s, size_t n) {
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* tools[i] checked; its name into t->names[i]. */
static int parse_tool(json_t *tool, size_t i, srv_tools *t, srv_perr *e) {
    char param[64];
    snprintf(param, sizeof param, "tools[%zu]", i);
    json_t *type = json_object_get(tool, "type"), *fn = json_object_get(tool, "function");
    if (!json_is_object(tool) || !json_is_string(type))
        return fail(e, 400, param, "tool %zu must be an object with a string 'type'", i);
    if (strcmp(json_string_value(type), "function"))
        return fail(e, 400, param, "tool %zu: type '%.40s' is not supported (only \"function\")", i,
                    json_string_value(type));
    if (!json_is_object(fn)) return fail(e, 400, param, "tool %zu needs a 'function' object", i);
    const char *key;
    json_t *v;
    json_object_foreach(fn, key, v) {
        if (strcmp(key, "name") && strcmp(key, "description") && strcmp(key, "parameters") && strcmp(key, "strict"))
            return fail(e, 400, param, "tool %zu: function field '%.40s' is not supported", i, key);
    }
    json_t *name = json_object_get(fn, "name"), *desc = json_object_get(fn, "description"),
           *params = json_object_get(fn, "parameters"), *strict = json_object_get(fn, "strict");
    if (!json_is_string(name) || !valid_name(json_string_value(name), json_string_length(name)))
        return fail(e, 400, param, "tool %zu: function 'name' must be 1-64 characters of a-z, A-Z, 0-9, _ and -", i);
    if (desc && !json_is_string(desc))
        return fail(e, 400, param, "tool %zu: function 'description' must be a string", i);
    if (params && !json_is_object(params))
        return fail(e, 400, param, "tool %zu: function 'parameters' must be a JSON schema object", i);
    if (strict && !json_is_null(strict) && !json_is_boolean(strict))
        return fail(e, 400, param, "tool %zu: function 'strict' must be a boolean", i);
    for (int k = 0; k < t->n; k++)
        if (!strcmp(t->names[k], json_string_value(name)))
            return fail(e, 400, param, "tool %zu: function name '%s' is given twice", i, json_string_value(name));
    if (!(t->names[t->n] = strdup(json_string_value(name)))) return fail(e, 500, NULL, "out of memory");
    t->n++;
    return 0;
}

/* The grammar of the calls REQUIRED/NAMED allow: root ::= call (("\n")
 * call)* with parallel calls, call ::= SRV_TOOL_OPEN "\n" r0 "\n"
 * SRV_TOOL_CLOSE, r0 the JSON schema {"anyOf": [{"name": const, "arguments":
 * parameters}, ...]} of the allowed functions (only one when named). */
static int call_grammar(json_t *tools, const srv_tools *t, const char *only, sk_grammar **out, srv_perr *e) {
    json_t *any = json_array(), *schema = json_pack("{s:o}", "anyOf", any);
    if (!schema) return fail(e, 500, NULL, "out of memory");
    size_t i;
    json_t *tool;
    json_array_foreach(tools, i, tool) {
        json_t *fn = json_object_get(tool, "function"), *name = json_object_get(fn, "name");
        if (only && strcmp(json_string_value(name), only)) continue;
        json_t *params = json_object_get(fn, "parameters");
        json_t *ps = params ? json_incref(params) : json_pack("{s:s}", "type", "object");
        json_t *alt = ps ? json_pack("{s:s,s:{s:{s:O},s:o},s:[s,s],s:b}", "type", "object", "properties", "name",
                                     "const", name, "arguments", ps, "required", "name", "arguments",
                                     "additionalProperties", 0)
                         : NULL;
        if (!alt || json_array_append_new(any, alt)) {
            json_decref(schema);
            return fail(e, 500, NULL, "out of memory");
        }
    }
    char *text = json_dumps(schema, JSON_COMPACT);
    json_decref(schema);
    if (!text) return fail(e, 500, NULL, "out of memory");
    char *gbnf = NULL;
    size_t gn = 0;
    sk_error err = {0};
    sk_status st = sk_json_schema_to_gbnf(text, strlen(text), &gbnf, &gn, &err);
    free(text);
    if (st == SK_ERR_NOMEM) return fail(e, 500, NULL, "out of memory");
    if (st) return fail(e, 400, "tools", "'tools': a function's parameters: %s", err.msg);
    static const char first[] = "root ::= r0\n"; /* sk_json_schema_to_gbnf's first line */
    if (gn < sizeof first - 1 || memcmp(gbnf, first, sizeof first - 1)) {
        free(gbnf);
        return fail(e, 500, "tools", "unexpected grammar from the JSON schema compiler");
    }
    sbuf g = {0};
    sb_str(&g, t->parallel ? "root ::= call ( \"\\n\" call )*\n" : "root ::= call\n");
    sb_str(&g, "call ::= \"" SRV_TOOL_OPEN "\\n\" r0 \"\\n" SRV_TOOL_CLOSE "\"\n");
    sb_put(&g, gbnf + sizeof first - 1, gn - (sizeof first - 1));
    free(gbnf);
    if (g.oom) {
        free(g.b);
        return fail(e, 500, NULL, "out of memory");
    }
    st = sk_grammar_compile(g.b, g.n, out, &err);
    free(g.b);
    if (st == SK_ERR_NOMEM) return fail(e, 500, NULL, "out of memory");
    if (st) return fail(e, 400, "tools", "'tools': %s", err.msg);
    return 0;
}

int srv_tools_parse(json_t *body, srv_tools *t, sk_grammar **grammar, srv_perr *e) {
    json_t *tools = json_object_get(body, "tools"), *choice = json_object_get(body, "tool_choice"),
           *par = json_object_get(body, "parallel_tool_calls");
    if (tools && json_is_null(tools)) tools = NULL;
    if (tools && !json_is_array(tools)) return fail(e, 400, "tools", "'tools' must be an array");
    if (tools && json_array_size(tools) > SRV_MAX_TOOLS)
        return fail(e, 400, "tools", "at most %d tools, got %zu", SRV_MAX_TOOLS, json_array_size(tools));
    if (tools && json_array_size(tools) == 0) tools = NULL;
    t->parallel = 1;
    if (par && !json_is_null(par)) {
        if (!json_is_boolean(par)) return fail(e, 400, "parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
        t->parallel = json_is_true(par);
    }
    const char *named = NULL;
    t->mode = tools ? SRV_TOOLS_AUTO : SRV_TOOLS_OFF;
    if (choice && !json_is_null(choice)) {
        if (json_is_string(choice)) {
            const char *c = json_string_value(choice);
            if (!strcmp(c, "none")) t->mode = SRV_TOOLS_OFF;
            else if (!strcmp(c, "auto")) t->mode = tools ? SRV_TOOLS_AUTO : SRV_TOOLS_OFF;
            else if (!strcmp(c, "required")) t->mode = SRV_TOOLS_REQUIRED;
            else return fail(e, 400, "tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or a function");
        } else if (json_is_object(choice)) {
            json_t *ty = json_object_get(choice, "type"), *fn = json_object_get(choice, "function");
            json_t *nm = json_is_object(fn) ? json_object_get(fn, "name") : NULL;
            if (!json_is_string(ty) || strcmp(json_string_value(ty), "function") || !json_is_string(nm))
                return fail(e, 400, "tool_choice", "'tool_choice' object must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
            named = json_string_value(nm);
            t->mode = SRV_TOOLS_NAMED;
        } else {
            return fail(e, 400, "tool_choice", "'tool_choice' must be a string or an object");
        }
        if ((t->mode == SRV_TOOLS_REQUIRED || t->mode == SRV_TOOLS_NAMED) && !tools)
            return fail(e, 400, "tool_choice", "'tool_choice' asks for a call but 'tools' is empty");
    }
    if (!tools) return 0;
    if (!(t->names = calloc(json_array_size(tools), sizeof *t->names))) return fail(e, 500, NULL, "out of memory");
    size_t i;
    json_t *tool;
    json_array_foreach(tools, i, tool) if (parse_tool(tool, i, t, e)) return -1;
    if (named) {
        int k = 0;
        while (k < t->n && strcmp(t->names[k], named)) k++;
        if (k == t->n) return fail(e, 400, "tool_choice", "'tool_choice' names '%.64s', which is not among 'tools'", named);
    }
    if (t->mode == SRV_TOOLS_OFF) return 0;
    sbuf b = {0};
    sb_str(&b, block_head);
    json_array_foreach(tools, i, tool) {
        sb_str(&b, "\n");
        sb_json(&b, tool);
    }
    sb_str(&b, block_tail);
    if (b.oom) {
        free(b.b);
        return fail(e, 500, NULL, "out of memory");
    }
    t->block = b.b;
    if (t->mode == SRV_TOOLS_AUTO) {
        if (*grammar) return 0;
        srv_perr e2 = {0};
        if (call_grammar(tools, t, NULL, &t->lazy, &e2) && e2.status != 400) {
            *e = e2;
            return -1;
        }
        return 0;
    }
    if (*grammar)
        return fail(e, 400, "tool_choice", "'tool_choice' %s constrains the reply, as 'response_format', 'grammar' or 'json_schema' does: give one of them",
                    named ? "naming a function" : "\"required\"");
    return call_grammar(tools, t, named, grammar, e);
}

void srv_tools_free(srv_tools *t) {
    for (int i = 0; i < t->n; i++) free(t->names[i]);
    free(t->names);
    free(t->block);
    sk_grammar_free(t->lazy);
    memset(t, 0, sizeof *t);
}

char *srv_tools_assistant_text(json_t *tool_calls, const char *content, int idx, srv_perr *e) {
    char param[80];
    snprintf(param, sizeof param, "messages[%d].tool_calls", idx);
    if (!json_is_array(tool_calls)) {
        fail(e, 400, param, "message %d: 'tool_calls' must be an array", idx);
        return NULL;
    }
    sbuf s = {0};
    sb_str(&s, content);
    size_t i;
    json_t *c;
    json_array_foreach(tool_calls, i, c) {
        json_t *fn = json_is_object(c) ? json_object_get(c, "function") : NULL;
        json_t *name = json_is_object(fn) ? json_object_get(fn, "name") : NULL;
        json_t *args = json_is_object(fn) ? json_object_get(fn, "arguments") : NULL;
        json_t *type = json_is_object(c) ? json_object_get(c, "type") : NULL;
        if (!json_is_string(name) || !json_is_string(args) || (type && (!json_is_string(type) || strcmp(json_string_value(type), "function")))) {
            free(s.b);
            fail(e, 400, param, "message %d: tool call %zu must be {\"type\": \"function\", \"function\": {\"name\": a string, \"arguments\": a JSON text}}", idx, i);
            return NULL;
        }
        json_error_t je;
        json_t *a = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, &je);
        if (!a) {
            free(s.b);
            fail(e, 400, param, "message %d: tool call %zu: 'arguments' is not JSON: %.100s", idx, i, je.text);
            return NULL;
        }
        if (s.n > 0) sb_str(&s, "\n");
        sb_str(&s, SRV_TOOL_OPEN "\n{\"name\": \"");
        sb_put(&s, json_string_value(name), json_string_length(name));
        sb_str(&s, "\", \"arguments\": ");
        sb_json(&s, a);
        json_decref(a);
        sb_str(&s, "}\n" SRV_TOOL_CLOSE);
    }
    if (s.oom || !s.b) {
        free(s.b);
        if (s.oom) {
            fail(e, 500, NULL, "out of memory");
            return NULL;
        }
        return strdup(content);
    }
    return s.b;
}

int srv_tools_append_response(char **buf, const char *content, srv_perr *e) {
    sbuf s = {.b = *buf, .n = *buf ? strlen(*buf) : 0, .cap = *buf ? strlen(*buf) + 1 : 0};
    if (s.n > 0) sb_str(&s, "\n");
    sb_str(&s, "<tool_response>\n");
    sb_str(&s, content);
    sb_str(&s, "\n</tool_response>");
    *buf = s.b;
    if (s.oom) return fail(e, 500, NULL, "out of memory");
    return 0;
}

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

size_t srv_tools_deliverable(const char *text, size_t from, size_t len) {
    static const char open[] = SRV_TOOL_OPEN;
    const size_t k = sizeof open - 1;
    size_t end = len;
    const char *p = from < len ? memmem(text + from, len - from, open, k) : NULL;
    if (p) end = (size_t)(p - text);
    else
        for (size_t m = k - 1; m > 0; m--) /* a partial opening at the end */
            if (m <= len - from && !memcmp(text + len - m, open, m)) {
                end = len - m;
                break;
            }
    while (end > from && is_space(text[end - 1])) end--;
    return end < from ? from : end;
}

/* The call at text[*pos, len): SRV_TOOL_OPEN JSON (SRV_TOOL_CLOSE or the
 * end), leading whitespace skipped; its parsed object into *obj and *pos
 * past it. Returns 0, or -1 when it is not one. */
static int read_call(const char *text, size_t len, size_t *pos, json_t **obj) {
    static const char open[] = SRV_TOOL_OPEN, close[] = SRV_TOOL_CLOSE;
    size_t i = *pos;
    while (i < len && is_space(text[i])) i++;
    if (len - i < sizeof open - 1 || memcmp(text + i, open, sizeof open - 1)) return -1;
    i += sizeof open - 1;
    const char *c = memmem(text + i, len - i, close, sizeof close - 1);
    size_t j = c ? (size_t)(c - text) : len;
    json_error_t je;
    *obj = json_loadb(text + i, j - i, 0, &je);
    if (!*obj) return -1;
    *pos = c ? j + sizeof close - 1 : len;
    return 0;
}

json_t *srv_tools_read_reply(const srv_tools *t, const char *text, size_t len, const char *id_prefix,
                             size_t *content_len, int *n_calls) {
    *n_calls = 0;
    *content_len = len;
    if (t->mode == SRV_TOOLS_OFF) return NULL;
    const char *p = memmem(text, len, SRV_TOOL_OPEN, sizeof SRV_TOOL_OPEN - 1);
    if (!p) return NULL;
    size_t pos = (size_t)(p - text), content = pos;
    while (content > 0 && is_space(text[content - 1])) content--;
    json_t *calls = json_array();
    if (!calls) goto oom;
    while (pos < len) {
        size_t q = pos;
        while (q < len && is_space(text[q])) q++;
        if (q == len) break;
        json_t *o = NULL;
        if (read_call(text, len, &pos, &o)) goto none;
        json_t *name = json_object_get(o, "name"), *args = json_object_get(o, "arguments");
        int known = 0;
        for (int k = 0; json_is_string(name) && k < t->n; k++) known |= !strcmp(t->names[k], json_string_value(name));
        if (!json_is_object(o) || json_object_size(o) != 2 || !known || !json_is_object(args) ||
            (!t->parallel && json_array_size(calls) == 1)) {
            json_decref(o);
            goto none;
        }
        char *a = json_dumps(args, JSON_COMPACT);
        char id[96];
        snprintf(id, sizeof id, "%s_%zu", id_prefix, json_array_size(calls));
        json_t *call = a ? json_pack("{s:s,s:s,s:{s:O,s:s}}", "id", id, "type", "function", "function", "name", name,
                                     "arguments", a)
                         : NULL;
        free(a);
        json_decref(o);
        if (!call || json_array_append_new(calls, call)) goto oom;
    }
    if (json_array_size(calls) == 0) goto none;
    *n_calls = (int)json_array_size(calls);
    *content_len = content;
    return calls;
none:
    json_decref(calls);
    return NULL;
oom:
    json_decref(calls);
    *n_calls = -1;
    return NULL;
}
