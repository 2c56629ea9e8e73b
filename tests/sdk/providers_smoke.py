"""The OpenAI Python SDK against every provider adapter: each model group is served by the mock
speaking one provider's wire format, and the SDK must get the same OpenAI shapes from all of them.

Usage: python providers_smoke.py <gateway base url> <master key> <model group>[@<429 group>]...
(the 429 check sends `mock_fail` in the body, or calls the second group, for providers whose body
cannot carry unknown fields.)
Exits non-zero on the first failed check; prints one line per check.
"""
import json
import sys

import openai

base, key = sys.argv[1], sys.argv[2]
groups = [arg.split("@") for arg in sys.argv[3:]]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    print(f"ok   {name}")


def usage_ok(u):
    return (u is not None and u.prompt_tokens > 0 and u.completion_tokens > 0
            and u.total_tokens == u.prompt_tokens + u.completion_tokens)


REQUIRED = {"id", "object", "created", "model", "choices", "usage"}
CHOICE = {"index", "message", "finish_reason"}
USAGE = {"prompt_tokens", "completion_tokens", "total_tokens"}
for model, *failing in groups:
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    r = client.chat.completions.create(model=model, messages=msgs, max_tokens=64)
    c = r.choices[0]
    check(f"{model}: chat", r.object == "chat.completion" and r.id and c.message.role == "assistant"
          and c.message.content and c.finish_reason == "stop" and usage_ok(r.usage), r)
    dumped = r.model_dump(exclude_none=True)
    check(f"{model}: OpenAI's required fields", REQUIRED <= set(dumped)
          and CHOICE <= set(dumped["choices"][0]) and {"role", "content"} <= set(dumped["choices"][0]["message"])
          and USAGE <= set(dumped["usage"]), dumped)

    chunks = list(client.chat.completions.create(
        model=model, messages=msgs, stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    check(f"{model}: stream", text and finishes == ["stop"] and chunks[-1].choices == []
          and usage_ok(chunks[-1].usage) and all(ch.object == "chat.completion.chunk" for ch in chunks),
          chunks[-1])

    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=WEATHER, tool_choice="required")
    call = (r.choices[0].message.tool_calls or [None])[0]
    check(f"{model}: tool call", call is not None and call.type == "function" and call.id
          and call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments), dict)
          and r.choices[0].finish_reason == "tool_calls", r)

    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=WEATHER, tool_choice="required", stream=True)
    calls = {}
    finish = None
    for ch in stream:
        if not ch.choices:
            continue
        for d in ch.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
            if d.id:
                entry["id"] = d.id
            if d.function and d.function.name:
                entry["name"] += d.function.name
            if d.function and d.function.arguments:
                entry["arguments"] += d.function.arguments
        finish = ch.choices[0].finish_reason or finish
    first = calls.get(0)
    check(f"{model}: streamed tool call", first and first["id"] and first["name"] == "get_weather"
          and isinstance(json.loads(first["arguments"] or "{}"), dict) and finish == "tool_calls", calls)

    try:
        if failing:
            client.chat.completions.create(model=failing[0], messages=msgs)
        else:
            client.chat.completions.create(model=model, messages=msgs, extra_body={"mock_fail": "429"})
        check(f"{model}: 429 raises RateLimitError", False)
    except openai.RateLimitError:
        check(f"{model}: 429 raises RateLimitError", True)

print("all SDK checks passed")
