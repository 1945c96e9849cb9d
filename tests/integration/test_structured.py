"""Constrained output in `sinkllm serve` (issue 14 point 2): response_format
json_object / json_schema, llama.cpp's `grammar` and `json_schema` fields.

Every reply is checked by an independent validator (the `jsonschema` pip
package) against the schema it was asked for: 200 random schemas of the
supported subset from a seeded generator, small enough to close within
the token budget (a reply that max_tokens cuts, finish_reason "length", is
counted apart: every complete one must validate, and most must be
complete), then streaming, n > 1, logprobs under a grammar, a recursive
schema, and the 400s that name the field and the keyword.
"""
import json
import random
import re
import threading

import jsonschema
import pytest
import requests

from test_server import Server

N_SCHEMAS = 200


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("structured"), "--slots", "2", name="structured")
    yield s
    assert s.stop() == 0, s.read_log()


def post(srv, path, body):
    return requests.post(srv.url + path, json=body, timeout=120)


# ---- the generator: small schemas of the supported subset ------------------

WORDS = ["red", "green", "blue", "cat", "dog", "x", "yes", "no", "a b", "caf\u00e9"]
NAMES = ["name", "age", "ok", "id", "tags", "kind", "v", "score", "item", "note"]


def gen_schema(rng, depth=0):
    """A random schema whose instances are short (strings <= 6 characters,
    arrays <= 3 items, at most 3 properties, nesting <= 2)."""
    kinds = ["string", "integer", "number", "boolean", "null", "enum", "const", "nullable", "anyof"]
    if depth < 2:
        kinds += ["object", "object", "array"]
    k = rng.choice(kinds)
    if k == "string":
        lo = rng.randint(0, 2)
        return {"type": "string", "minLength": lo, "maxLength": rng.randint(max(lo, 1), 6)}
    if k in ("integer", "number", "boolean", "null"):
        return {"type": k}
    if k == "enum":
        vals = rng.sample(WORDS, rng.randint(1, 4)) + rng.sample([0, 1, 2.5, None, True], rng.randint(0, 2))
        return {"enum": vals}
    if k == "const":
        return {"const": rng.choice(WORDS + [7, False])}
    if k == "nullable":
        return {"type": [rng.choice(["string", "integer", "boolean"]), "null"], "maxLength": 4}
    if k == "anyof":
        return {"anyOf": [gen_schema(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if k == "array":
        lo = rng.randint(0, 2)
        return {"type": "array", "items": gen_schema(rng, depth + 1), "minItems": lo,
                "maxItems": rng.randint(max(lo, 1), 3)}
    names = rng.sample(NAMES, rng.randint(0, 3))
    props = {n: gen_schema(rng, depth + 1) for n in names}
    s = {"type": "object", "properties": props,
         "required": [n for n in names if rng.random() < 0.6]}
    if rng.random() < 0.7:
        s["additionalProperties"] = False
    if rng.random() < 0.2:
        s["description"] = "annotations are ignored"
    return s


def wrap(rng, schema, i):
    """The request field that carries the schema, varied over the three ways."""
    way = i % 3
    if way == 0:
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": f"s{i}", "schema": schema, "strict": True}}}
    if way == 1:
        return {"json_schema": schema}
    # with $defs and a $ref, as pydantic writes them
    return {"response_format": {"type": "json_schema", "json_schema": {
        "name": f"s{i}", "schema": {"$defs": {"T": schema}, "$ref": "#/$defs/T"}}}}


def test_random_schemas_validate(srv):
    rng = random.Random(1234)
    jobs = []
    for i in range(N_SCHEMAS):
        schema = gen_schema(rng)
        body = {"max_tokens": 40, "temperature": rng.choice([0, 0.7, 1.0]), "seed": i, **wrap(rng, schema, i)}
        if i % 8 == 7:
            path = "/v1/chat/completions"
            body["messages"] = [{"role": "user", "content": "Reply with compact JSON."}]
        else:  # one prompt for all: its cache is reused; compact examples keep replies short
            path = "/v1/completions"
            body["prompt"] = 'Compact JSON values: {"a":1,"b":[true,null]} ["x","y"] 2.5 "z" {"k":{"v":0}}\nNext:'
        jobs.append((i, schema, path, body))
    results = [None] * len(jobs)

    def worker(k):  # two clients, one per slot
        for i, schema, path, body in jobs[k::2]:
            r = post(srv, path, body)
            assert r.status_code == 200, (schema, r.text)
            ch = r.json()["choices"][0]
            results[i] = (ch["message"]["content"] if "message" in ch else ch["text"], ch["finish_reason"])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    complete = cut = 0
    for (i, schema, _, _), res in zip(jobs, results):
        assert res is not None, f"schema {i} got no reply"
        text, finish = res
        if finish == "length":
            cut += 1
            continue
        assert finish == "stop", (i, finish)
        try:
            jsonschema.validate(json.loads(text), schema)
        except Exception as e:  # noqa: BLE001 - report which schema and reply
            pytest.fail(f"schema {i} {json.dumps(schema)}: reply {text!r}: {e}")
        complete += 1
    print(f"structured: {complete} complete and valid, {cut} cut by max_tokens, of {N_SCHEMAS}")
    assert complete >= 0.8 * N_SCHEMAS, f"only {complete} of {N_SCHEMAS} replies complete"


def test_json_object_mode(srv):
    r = post(srv, "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "Describe a cat as a JSON object."}],
        "max_tokens": 80, "temperature": 0, "response_format": {"type": "json_object"}})
    assert r.status_code == 200, r.text
    ch = r.json()["choices"][0]
    text = ch["message"]["content"]
    if ch["finish_reason"] == "stop":
        assert isinstance(json.loads(text), dict), text
    assert text.startswith("{"), text


PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                           "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def test_streaming_and_n(srv):
    client = srv.client()
    chunks = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "A person as JSON."}], max_tokens=60, temperature=0,
        stream=True, response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}})
    text, finish = "", None
    for c in chunks:
        if c.choices:
            text += c.choices[0].delta.content or ""
            finish = c.choices[0].finish_reason or finish
    assert finish == "stop", text
    jsonschema.validate(json.loads(text), PERSON)
    # n = 2: each choice has its own matcher from the start
    r = post(srv, "/v1/completions", {"prompt": "Person:", "n": 2, "max_tokens": 60, "temperature": 1.0,
                                      "seed": 5, "json_schema": PERSON})
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert len(choices) == 2
    for ch in choices:
        assert ch["finish_reason"] == "stop", ch
        jsonschema.validate(json.loads(ch["text"]), PERSON)


def test_logprobs_under_a_grammar(srv):
    """Log-probabilities are those of the masked logits: every alternative
    listed is a token the grammar allows there, and they sum to <= 1."""
    r = post(srv, "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "Is the sky blue?"}], "max_tokens": 10, "temperature": 0,
        "logprobs": True, "top_logprobs": 5, "grammar": 'root ::= "yes" | "no" | "maybe"'})
    assert r.status_code == 200, r.text
    ch = r.json()["choices"][0]
    assert ch["message"]["content"] in ("yes", "no", "maybe")
    content = ch["logprobs"]["content"]
    assert "".join(t["token"] for t in content) == ch["message"]["content"]
    first = content[0]["top_logprobs"]
    assert first and all(any(w.startswith(a["token"]) for w in ("yes", "no", "maybe")) for a in first), first
    assert sum(2.718281828 ** a["logprob"] for a in first) <= 1.0001


def test_grammar_field(srv):
    r = post(srv, "/v1/completions", {"prompt": "Count:", "max_tokens": 20, "temperature": 0,
                                      "grammar": 'root ::= [1-9] ("," " "? [0-9]){0,4} "."'})
    assert r.status_code == 200, r.text
    ch = r.json()["choices"][0]
    assert ch["finish_reason"] == "stop" and re.fullmatch(r"[1-9](, ?[0-9]){0,4}\.", ch["text"]), ch


def test_recursive_schema(srv):
    tree = {"$defs": {"node": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 6},
        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
        "required": ["name"], "additionalProperties": False}}, "$ref": "#/$defs/node"}
    # a few-shot prompt, so that the model closes the tree (the grammar
    # allows any depth: only the budget would end an endless one)
    prompt = ('Tree: {"name": "ann", "children": [{"name": "bob"}, {"name": "cy", "children": '
              '[{"name": "dee"}]}]}\nTree: {"name": "eve", "children": [{"name": "fay"}]}\nTree:')
    r = post(srv, "/v1/completions", {"prompt": prompt, "max_tokens": 120, "temperature": 0, "json_schema": tree})
    assert r.status_code == 200, r.text
    ch = r.json()["choices"][0]
    assert ch["finish_reason"] == "stop", ch
    assert ch["text"].count("{") >= 2, ch  # it did recurse
    jsonschema.validate(json.loads(ch["text"]), tree)


@pytest.mark.parametrize("schema,keyword", [
    ({"type": "string", "pattern": "^a+$"}, "pattern"),
    ({"type": "string", "format": "date-time"}, "format"),
    ({"type": "integer", "minimum": 0}, "minimum"),
    ({"type": "number", "multipleOf": 2}, "multipleOf"),
    ({"allOf": [{"type": "integer"}]}, "allOf"),
    ({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}}, "uniqueItems"),
    ({"not": {"type": "null"}}, "not"),
])
@pytest.mark.parametrize("way", ["response_format", "json_schema"])
def test_unsupported_keywords_are_400_naming_them(srv, schema, keyword, way):
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    if way == "response_format":
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    else:
        body["json_schema"] = schema
    r = post(srv, "/v1/chat/completions", body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == way and f"'{keyword}'" in err["message"], err


@pytest.mark.parametrize("body,field,words", [
    ({"grammar": 'root ::= "a'}, "grammar", "unterminated string literal"),
    ({"grammar": "root ::= x"}, "grammar", "undefined rule 'x'"),
    ({"grammar": "start ::= \"a\""}, "grammar", "no rule named 'root'"),
    ({"grammar": 'root ::= root "a" | "b"'}, "grammar", "left-recursive"),
    ({"grammar": 'root ::= "a"{100000}'}, "grammar", "repetition count"),
    ({"grammar": 7}, "grammar", "must be a string"),
    ({"json_schema": "string"}, "json_schema", "must be a JSON schema"),
    ({"json_schema": {"$ref": "#/$defs/missing"}}, "json_schema", "does not resolve"),
    ({"response_format": {"type": "yaml"}}, "response_format", "'yaml'"),
    ({"response_format": {"type": "json_schema"}}, "response_format", "needs a 'json_schema' object"),
    ({"grammar": 'root ::= "a"', "json_schema": {}}, "grammar", "at most one"),
])
def test_bad_constraints_are_400(srv, body, field, words):
    r = post(srv, "/v1/completions", {"prompt": "Hi", "max_tokens": 2, **body})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == field and words in err["message"], err
