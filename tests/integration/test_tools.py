"""Tool calls in `sinkllm serve` (issue 14 point 3): tools, tool_choice
(auto, none, required, a named function), parallel_tool_calls, assistant
tool_calls and role "tool" messages, streaming deltas, and LangChain's
bind_tools and with_structured_output.

Checked against independent references:
- the prompt: Qwen2.5-Instruct's chat template (the Jinja text below, the
  tool format sinkllm writes into the messages), rendered with jinja2 and
  Hugging Face's `tojson`, must equal POST /apply-template byte for byte;
- the calls: every argument object validates against its function's JSON
  schema (the `jsonschema` package); the streamed deltas, put together as
  the openai SDK's documentation says, equal the non-streamed reply;
- the parser (auto): a reply forced by a GBNF grammar to contain text and a
  call is split into exactly that content and that call; a malformed or
  unknown call stays content.
SmolLM2-135M does not call tools on its own in these prompts, so the
auto-mode tests force the reply's text with `grammar`.
"""
import json

import jinja2
import jsonschema
import pytest
import requests

from test_server import Server

# Qwen2.5-Instruct's chat template (tokenizer_config.json), the reference
# for the prompt format (server_tools.h).
QWEN25_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""


def qwen25_render(messages, tools):
    """The reference prompt: OpenAI messages as Hugging Face passes them to
    the template (tool call arguments as objects), HF's tojson filter."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x: json.dumps(x, ensure_ascii=False)
    hf = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            m["tool_calls"] = [{"type": "function", "function": {
                "name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}}
                for c in m["tool_calls"]]
        hf.append(m)
    return env.from_string(QWEN25_TEMPLATE).render(messages=hf, tools=tools, add_generation_prompt=True)


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city (\u00b0C or \u00b0F)",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 20},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "The local time in a time zone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 20}},
                   "required": ["zone"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search", "parameters": {"type": "object", "properties": {
        "query": {"type": "string", "maxLength": 30},
        "limit": {"type": "integer"},
        "exact": {"type": "boolean"}}, "required": ["query", "limit", "exact"]}}}
TOOLS = [WEATHER, TIME, SEARCH]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("tools"), "--slots", "2", name="tools")
    yield s
    assert s.stop() == 0, s.read_log()


def chat(srv, **body):
    body.setdefault("temperature", 0)
    body.setdefault("max_tokens", 96)
    r = srv.post("/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]


def stream(srv, **body):
    """The streamed chunks' choices, and the reply put together: content,
    tool calls by index (id, type, name from their first delta, arguments
    concatenated), finish reason."""
    body.setdefault("temperature", 0)
    body.setdefault("max_tokens", 96)
    body["stream"] = True
    r = requests.post(srv.url + "/v1/chat/completions", json=body, stream=True, timeout=120)
    assert r.status_code == 200, r.text
    deltas, content, calls, finish = [], "", {}, None
    for line in r.iter_lines():
        if not line.startswith(b"data: {"):
            continue
        c = json.loads(line[6:])["choices"][0]
        deltas.append(c)
        d = c.get("delta", {})
        content += d.get("content") or ""
        for tc in d.get("tool_calls") or []:
            k = tc["index"]
            if k not in calls:
                assert set(tc) == {"index", "id", "type", "function"}, tc
                assert tc["function"]["arguments"] == "", tc
                calls[k] = {"id": tc["id"], "type": tc["type"],
                            "function": {"name": tc["function"]["name"], "arguments": ""}}
            else:
                assert set(tc) == {"index", "function"} and set(tc["function"]) == {"arguments"}, tc
                calls[k]["function"]["arguments"] += tc["function"]["arguments"]
        if c["finish_reason"]:
            finish = c["finish_reason"]
    return deltas, content, [calls[k] for k in sorted(calls)], finish


def check_calls(calls, names=None):
    assert calls, "no tool calls"
    for c in calls:
        assert c["type"] == "function" and c["id"].startswith("call_"), c
        name = c["function"]["name"]
        assert name in (names or SCHEMAS), name
        jsonschema.validate(json.loads(c["function"]["arguments"]), SCHEMAS[name])


# ---- the prompt -------------------------------------------------------------

CONVERSATIONS = [
    [SYSTEM, {"role": "user", "content": "What is the weather in Paris?"}],
    [SYSTEM, {"role": "user", "content": "Weather in Oslo and the time in Tokyo?"},
     {"role": "assistant", "content": None, "tool_calls": [
         {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\",\"unit\":\"celsius\"}"}},
         {"id": "b", "type": "function", "function": {"name": "get_time", "arguments": "{\"zone\": \"Asia/Tokyo\"}"}}]},
     {"role": "tool", "tool_call_id": "a", "content": "{\"temperature\": 3}"},
     {"role": "tool", "tool_call_id": "b", "content": "09:30"},
     {"role": "assistant", "content": "It is 3 \u00b0C in Oslo and 09:30 in Tokyo."},
     {"role": "user", "content": "Thanks. And in Rome?"},
     {"role": "assistant", "content": "Let me look.", "tool_calls": [
         {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\", \"unit\": \"celsius\"}"}}]},
     {"role": "tool", "tool_call_id": "c", "content": "{\"temperature\": 17}"}],
]


@pytest.mark.parametrize("k", range(len(CONVERSATIONS)))
def test_prompt_is_qwen25_template(srv, k):
    msgs = CONVERSATIONS[k]
    r = srv.post("/apply-template", {"messages": msgs, "tools": TOOLS})
    assert r.status_code == 200, r.text
    assert r.json()["prompt"] == qwen25_render(msgs, TOOLS)
    # tool_choice "none": no tools block, the history still in the format
    r = srv.post("/apply-template", {"messages": msgs, "tools": TOOLS, "tool_choice": "none"})
    assert r.json()["prompt"] == qwen25_render(msgs, [])


def test_prompt_without_system_message(srv):
    msgs = [{"role": "user", "content": "hi"}]
    p = srv.post("/apply-template", {"messages": msgs, "tools": [TIME]}).json()["prompt"]
    ref = qwen25_render([{"role": "system", "content": ""}] + msgs, [TIME])
    # the documented difference: no default system text, the block alone
    assert p == ref.replace("<|im_start|>system\n\n\n# Tools", "<|im_start|>system\n# Tools"), p


# ---- required and named: constrained calls ----------------------------------

QUESTIONS = ["What is the weather in Paris?", "What time is it in Tokyo?", "Find recipes for pancakes.",
             "Hello!"]


@pytest.mark.parametrize("q", QUESTIONS)
def test_required_calls_validate(srv, q):
    c = chat(srv, messages=[SYSTEM, {"role": "user", "content": q}], tools=TOOLS, tool_choice="required",
             parallel_tool_calls=False)
    assert c["finish_reason"] == "tool_calls", c
    assert c["message"]["content"] is None
    assert len(c["message"]["tool_calls"]) == 1
    check_calls(c["message"]["tool_calls"])


def test_named_function(srv):
    for name in SCHEMAS:
        c = chat(srv, messages=[SYSTEM, {"role": "user", "content": "What is the weather in Paris?"}], tools=TOOLS,
                 tool_choice={"type": "function", "function": {"name": name}}, parallel_tool_calls=False)
        assert c["finish_reason"] == "tool_calls", c
        assert [t["function"]["name"] for t in c["message"]["tool_calls"]] == [name]
        check_calls(c["message"]["tool_calls"], [name])


def test_openai_sdk_and_stream_equal(srv):
    msgs = [SYSTEM, {"role": "user", "content": "What is the weather in Paris?"}]
    kw = dict(model="x", messages=msgs, tools=TOOLS, temperature=0, max_tokens=96,
              tool_choice={"type": "function", "function": {"name": "get_weather"}})
    r = srv.client().chat.completions.create(**kw)
    m = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls" and m.content is None
    call = m.tool_calls[0]
    jsonschema.validate(json.loads(call.function.arguments), SCHEMAS["get_weather"])
    deltas, content, calls, finish = stream(srv, messages=msgs, tools=TOOLS, tool_choice=kw["tool_choice"])
    assert finish == "tool_calls" and content == ""
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == \
        [(t.function.name, t.function.arguments) for t in m.tool_calls]
    # the SDK's own stream accumulation
    acc = {}
    for ch in srv.client().chat.completions.create(stream=True, **kw):
        for tc in ch.choices[0].delta.tool_calls or [] if ch.choices else []:
            a = acc.setdefault(tc.index, {"name": "", "arguments": ""})
            a["name"] += tc.function.name or ""
            a["arguments"] += tc.function.arguments or ""
    assert acc[0] == {"name": "get_weather", "arguments": call.function.arguments}


def test_parallel_calls(srv):
    """parallel_tool_calls (the default): the grammar allows several calls;
    each one validates, ids are distinct."""
    c = chat(srv, messages=[SYSTEM, {"role": "user", "content": "Weather in Paris and in Rome?"}], tools=TOOLS,
             tool_choice="required", max_tokens=160)
    if c["finish_reason"] == "length":  # cut inside a call: the text is content
        assert "tool_calls" not in c["message"] and c["message"]["content"].startswith("<tool_call>")
        return
    calls = c["message"]["tool_calls"]
    check_calls(calls)
    assert len({t["id"] for t in calls}) == len(calls)


def test_tool_round_trip(srv):
    """The SDK's own assistant message and a tool result go back in; the
    next reply is text and the prompt holds the result."""
    cl = srv.client()
    msgs = [SYSTEM, {"role": "user", "content": "What is the weather in Paris?"}]
    r = cl.chat.completions.create(model="x", messages=msgs, tools=[WEATHER], tool_choice="required",
                                   temperature=0, max_tokens=96, parallel_tool_calls=False)
    m = r.choices[0].message
    msgs.append(m.model_dump(exclude_none=True))
    msgs.append({"role": "tool", "tool_call_id": m.tool_calls[0].id, "content": "{\"temperature\": 21}"})
    r2 = cl.chat.completions.create(model="x", messages=msgs, tools=[WEATHER], temperature=0, max_tokens=48)
    assert r2.choices[0].message.content
    p = srv.post("/apply-template", {"messages": msgs, "tools": [WEATHER]}).json()["prompt"]
    assert p == qwen25_render(msgs, [WEATHER])
    assert "<tool_response>\n{\"temperature\": 21}\n</tool_response><|im_end|>" in p


# ---- auto: the reply parsed ---------------------------------------------------

CALL = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}'


def gbnf_literal(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@pytest.mark.parametrize("pre", ["", "Let me check.\n"])
def test_auto_parses_a_call(srv, pre):
    body = dict(messages=[SYSTEM, {"role": "user", "content": "What is the weather in Paris?"}], tools=TOOLS,
                grammar="root ::= " + gbnf_literal(pre + "<tool_call>\n" + CALL + "\n</tool_call>"))
    c = chat(srv, **body)
    assert c["finish_reason"] == "tool_calls", c
    assert c["message"]["content"] == (pre.strip() or None)
    (t,) = c["message"]["tool_calls"]
    assert t["function"] == {"name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius"}'}
    deltas, content, calls, finish = stream(srv, **body)
    assert content == pre.strip() and finish == "tool_calls"
    assert [x["function"] for x in calls] == [t["function"]]
    assert not any("<tool" in (d.get("delta", {}).get("content") or "") for d in deltas)


@pytest.mark.parametrize("text", [
    "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>",      # unknown function
    "<tool_call>\n{\"name\": \"get_time\", \"arguments\": 3}\n</tool_call>",   # arguments not an object
    "<tool_call>\n{\"name\": \"get_time\"\n</tool_call>",                      # not JSON
    "<tool_call>\n" + CALL + "\n</tool_call> and more",                        # text after the call
    "I would use <tool_ but no.",                                             # a partial opening
])
def test_auto_malformed_stays_content(srv, text):
    body = dict(messages=[SYSTEM, {"role": "user", "content": "What is the weather?"}], tools=TOOLS,
                grammar="root ::= " + gbnf_literal(text))
    c = chat(srv, **body)
    assert c["finish_reason"] == "stop" and "tool_calls" not in c["message"], c
    assert c["message"]["content"] == text
    deltas, content, calls, finish = stream(srv, **body)
    assert (content, calls, finish) == (text, [], "stop")


def few_shot(question):
    """A history of weather questions each answered by a call: SmolLM2
    then calls on its own."""
    msgs = [SYSTEM]
    for city in ("Berlin", "Rome", "Oslo"):
        msgs += [{"role": "user", "content": f"What is the weather in {city}?"},
                 {"role": "assistant", "content": None, "tool_calls": [
                     {"id": "c" + city, "type": "function", "function": {
                         "name": "get_weather", "arguments": json.dumps({"city": city, "unit": "celsius"})}}]}]
    return msgs + [{"role": "user", "content": question}]


def test_auto_model_calls_constrained(srv):
    """auto: the model's own call is read back; from its <tool_call> on the
    calls' grammar constrains it (the server says so in its log)."""
    before = srv.read_log().count("tool call constrained")
    c = chat(srv, messages=few_shot("What is the weather in Paris?"), tools=TOOLS, parallel_tool_calls=False)
    assert c["finish_reason"] == "tool_calls", c
    (t,) = c["message"]["tool_calls"]
    assert t["function"]["name"] == "get_weather"
    args = json.loads(t["function"]["arguments"])
    jsonschema.validate(args, SCHEMAS["get_weather"])
    assert args["city"] == "Paris"
    assert srv.read_log().count("tool call constrained") == before + 1
    # a schema keyword outside the subset: the call is not constrained, the request is served
    loose = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "pattern": "^[A-Z]"}}}}}
    r = srv.post("/v1/chat/completions", {"messages": few_shot("Weather in Paris?"), "tools": [loose],
                                          "temperature": 0, "max_tokens": 64})
    assert r.status_code == 200, r.text
    assert srv.read_log().count("tool call constrained") == before + 1


def test_auto_without_a_call_and_none(srv):
    msgs = [SYSTEM, {"role": "user", "content": "Say hello."}]
    c = chat(srv, messages=msgs, tools=TOOLS, max_tokens=24)
    assert "tool_calls" not in c["message"] and c["message"]["content"]
    c2 = chat(srv, messages=msgs, tools=TOOLS, tool_choice="none", max_tokens=24)
    plain = chat(srv, messages=msgs, max_tokens=24)
    assert c2["message"] == plain["message"]  # none: as if no tools were given


# ---- bad requests: a 400 naming the field ------------------------------------

BAD = [
    ({"tools": {"a": 1}}, "tools"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0]"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}, "tools[0]"),
    ({"tools": [{"type": "function", "function": {"name": "f", "extra": 1}}]}, "tools[0]"),
    ({"tools": [TIME, TIME]}, "tools[1]"),
    ({"tools": [TIME], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [TIME], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [TIME], "tool_choice": "required", "response_format": {"type": "json_object"}}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"z": {"type": "string", "pattern": "^a"}}}}}],
      "tool_choice": "required"}, "tools"),
    ({"tools": [TIME], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]},
     "messages[1].tool_calls"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "a"}]}]},
     "messages[1].tool_calls"),
    ({"messages": [{"role": "tool"}]}, "messages[0].content"),
]


@pytest.mark.parametrize("extra,param", BAD)
def test_bad_tool_requests(srv, extra, param):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **extra}
    r = srv.post("/v1/chat/completions", body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.text


def test_tools_on_completions_refused(srv):
    r = srv.post("/v1/completions", {"prompt": "hi", "tools": [TIME]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools"


# ---- LangChain -----------------------------------------------------------------

def lc_model(srv, **kw):
    from langchain_openai import ChatOpenAI
    return ChatOpenAI(base_url=srv.url + "/v1", api_key="none", model="smollm2", temperature=0,
                      max_tokens=96, max_retries=0, timeout=120, **kw)


def test_langchain_bind_tools(srv):
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str, unit: str) -> str:
        """Get the current weather in a city, in celsius or fahrenheit."""
        return "sunny"

    @tool
    def get_time(zone: str) -> str:
        """The local time in a time zone."""
        return "noon"

    llm = lc_model(srv).bind_tools([get_weather, get_time], tool_choice="get_weather")
    msg = llm.invoke("What is the weather in Paris?")
    assert msg.tool_calls, msg
    for tc in msg.tool_calls:  # parallel calls allowed (OpenAI's default): each one the named function
        assert tc["name"] == "get_weather" and set(tc["args"]) == {"city", "unit"}, msg
        assert all(isinstance(v, str) for v in tc["args"].values())
    one = lc_model(srv).bind_tools([get_weather, get_time], tool_choice="get_weather", parallel_tool_calls=False)
    assert len(one.invoke("What is the weather in Paris?").tool_calls) == 1
    msg2 = lc_model(srv).bind_tools([get_weather, get_time], tool_choice="any").invoke("Time in Tokyo?")
    assert msg2.tool_calls and msg2.tool_calls[0]["name"] in ("get_weather", "get_time")


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_with_structured_output(srv, method):
    from pydantic import BaseModel, Field

    class City(BaseModel):
        """A city and its country."""
        name: str = Field(description="the city's name", max_length=20)
        country: str = Field(description="its country", max_length=20)
        population_millions: int

    out = lc_model(srv).with_structured_output(City, method=method).invoke(
        "Give me the capital of France as a JSON object.")
    assert isinstance(out, City), out
