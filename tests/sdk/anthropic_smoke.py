"""Smoke test with the official Anthropic Python SDK against a running Tollgate (/v1/messages).

Usage: python anthropic_smoke.py <gateway base url> <key>
The key goes in `x-api-key`, as the SDK sends it. Exits non-zero on the first failed check; prints
one line per check.
"""
import sys

import anthropic

base, key = sys.argv[1], sys.argv[2]
client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
MODEL = "mock-gpt"
HELLO = [{"role": "user", "content": "Hello, Claude"}]
TOOLS = [{
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city and state"}},
        "required": ["location"],
    },
}]


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    print(f"ok   {name}")


m = client.messages.create(model=MODEL, max_tokens=100, system="You are terse.", messages=HELLO)
check("messages.create", m.type == "message" and m.role == "assistant" and m.id.startswith("msg_")
      and m.content[0].type == "text" and m.content[0].text and m.stop_reason == "end_turn"
      and m.usage.input_tokens > 0 and m.usage.output_tokens > 0, m)

with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
check("messages.stream text", text and text == final.content[0].text
      and final.stop_reason == "end_turn" and final.usage.output_tokens > 0, final)

m = client.messages.create(model=MODEL, max_tokens=100, messages=[
    {"role": "user", "content": "What's the weather like in San Francisco?"}],
    tools=TOOLS, tool_choice={"type": "tool", "name": "get_weather"})
call = m.content[-1]
check("messages.create tool_use", m.stop_reason == "tool_use" and call.type == "tool_use"
      and call.name == "get_weather" and call.input == {} and call.id, m)

with client.messages.stream(model=MODEL, max_tokens=100, messages=[
        {"role": "user", "content": "What's the weather like in Paris?"}],
        tools=TOOLS, tool_choice={"type": "any"}) as stream:
    events = [e.type for e in stream]
    final = stream.get_final_message()
streamed_call = final.content[-1]
check("messages.stream tool_use", final.stop_reason == "tool_use" and streamed_call.type == "tool_use"
      and streamed_call.name == "get_weather" and streamed_call.input == {}
      and "input_json" in events, (final, events))

answer = client.messages.create(model=MODEL, max_tokens=100, tools=TOOLS, messages=[
    {"role": "user", "content": "What's the weather like in San Francisco?"},
    {"role": "assistant", "content": m.content},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "15 degrees"}]},
])
check("tool_result round trip", answer.content[0].type == "text" and answer.stop_reason == "end_turn", answer)

count = client.messages.count_tokens(model=MODEL, messages=HELLO, system="You are terse.")
check("messages.count_tokens", count.input_tokens > 0, count)

try:
    anthropic.Anthropic(base_url=base, api_key="sk-wrong-0000000000", max_retries=0).messages.create(
        model=MODEL, max_tokens=10, messages=HELLO)
    check("auth error", False)
except anthropic.AuthenticationError as err:
    check("auth error raises AuthenticationError", err.body["error"]["type"] == "authentication_error", err.body)

for mode, exc, kind in [("429", anthropic.RateLimitError, "rate_limit_error"),
                        ("500", anthropic.InternalServerError, "api_error"),
                        ("context_length", anthropic.BadRequestError, "invalid_request_error")]:
    try:
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO, extra_body={"mock_fail": mode})
        check(f"{mode} raises {exc.__name__}", False)
    except exc as err:
        check(f"{mode} raises {exc.__name__}", err.body["type"] == "error"
              and err.body["error"]["type"] == kind, err.body)

try:
    with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO,
                                extra_body={"mock_fail": "cut"}) as stream:
        for _ in stream:
            pass
    check("cut stream raises", False)
except anthropic.APIError:
    check("cut stream raises APIError", True)

print("all SDK checks passed")
