"""Smoke test with the official OpenAI Python SDK against a running Tollgate.

Usage: python openai_smoke.py <gateway base url> <master key>
Exits non-zero on the first failed check; prints one line per check.
"""
import sys

import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    print(f"ok   {name}")


r = client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}])
check("chat", r.choices[0].message.content and r.usage.total_tokens > 0, r)

chunks = list(client.chat.completions.create(
    model="mock-gpt", messages=[{"role": "user", "content": "hi"}], stream=True,
    stream_options={"include_usage": True}))
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
check("stream", text and chunks[-1].usage and chunks[-1].usage.total_tokens > 0, chunks[-1])

e = client.embeddings.create(model="mock-embed", input=["a", "b"])
check("embeddings", len(e.data) == 2 and len(e.data[0].embedding) > 0)

c = client.completions.create(model="mock-gpt", prompt="Once upon a time")
check("completions", c.choices[0].text)

img = client.images.generate(model="mock-image", prompt="a lighthouse", n=2, size="1024x1024",
                             quality="medium")
check("images.generate", len(img.data) == 2 and img.data[0].b64_json and img.usage.output_tokens > 0, img)

edit = client.images.edit(model="mock-image", image=("cat.png", b"\x89PNG\r\n\x1a\n\0pixels", "image/png"),
                          prompt="add a hat")
check("images.edit", len(edit.data) == 1 and edit.data[0].b64_json, edit)

mod = client.moderations.create(input=["hello", "I will kill it"])
check("moderations.create", len(mod.results) == 2 and not mod.results[0].flagged
      and mod.results[1].flagged and mod.results[1].categories.violence, mod)

wav = (b"RIFF" + (36 + 32000).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
       + bytes([1, 0, 1, 0]) + (16000).to_bytes(4, "little") + (32000).to_bytes(4, "little")
       + bytes([2, 0, 16, 0]) + b"data" + (32000).to_bytes(4, "little") + bytes(32000))
tr = client.audio.transcriptions.create(model="mock-whisper", file=("hello.wav", wav, "audio/wav"))
check("audio.transcriptions.create", tr.text.startswith("Mock transcript of hello.wav"), tr)
srt = client.audio.transcriptions.create(model="mock-whisper", file=("hello.wav", wav, "audio/wav"),
                                         response_format="srt")
check("audio.transcriptions.create srt", isinstance(srt, str) and "00:00:01,000" in srt, srt)
tl = client.audio.translations.create(model="mock-whisper", file=("hello.wav", wav, "audio/wav"))
check("audio.translations.create", tl.text.startswith("Mock English translation"), tl)

speech = client.audio.speech.create(model="mock-tts", voice="alloy", input="Hello world")
check("audio.speech.create", len(speech.content) == 64 * len("Hello world"), len(speech.content))
with client.audio.speech.with_streaming_response.create(model="mock-tts", voice="alloy",
                                                        input="Hello world", response_format="wav") as r:
    pieces = list(r.iter_bytes())
    check("audio.speech streaming", r.headers["content-type"] == "audio/wav"
          and sum(len(p) for p in pieces) == 64 * len("Hello world"), r.headers)

line = ('{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", '
        '"body": {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}}\n')
f = client.files.create(file=("batch.jsonl", line.encode(), "application/jsonl"), purpose="batch")
check("files.create", f.id and f.purpose == "batch" and f.bytes == len(line), f)
check("files.list", f.id in [x.id for x in client.files.list()])
check("files.retrieve", client.files.retrieve(f.id).id == f.id)
check("files.content", client.files.content(f.id).read() == line.encode())
b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                          metadata={"mock_batch_delay_ms": "0"})
check("batches.create", b.id and b.input_file_id == f.id, b)
b = client.batches.retrieve(b.id)
check("batches.retrieve", b.status == "completed" and b.output_file_id, b)
check("batches.list", b.id in [x.id for x in client.batches.list()])
out = client.files.content(b.output_file_id).text
check("batch output", '"custom_id":"r1"' in out.replace(" ", ""), out)
d = client.files.delete(f.id)
check("files.delete", d.deleted, d)

resp = client.responses.create(model="mock-gpt", input="hi", instructions="Be brief.")
check("responses.create", resp.object == "response" and resp.status == "completed"
      and resp.output_text and resp.usage.total_tokens > 0, resp)

events = list(client.responses.create(model="mock-gpt", input="hi", stream=True))
kinds = [e.type for e in events]
streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
check("responses stream", kinds[0] == "response.created" and kinds[-1] == "response.completed"
      and streamed and streamed == events[-1].response.output_text
      and events[-1].response.usage.output_tokens > 0, kinds)

got = client.responses.retrieve(resp.id)
check("responses.retrieve", got.id == resp.id and got.output_text == resp.output_text, got)

follow = client.responses.create(model="mock-gpt", input="again", previous_response_id=resp.id)
items = client.responses.input_items.list(follow.id)
check("responses.input_items.list", len(items.data) == 3 and items.data[0].type == "message"
      and items.data[0].content[0].text == "again", items)

tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]
for model in ["mock-gpt", "mock-claude"]:
    call = client.responses.create(model=model, input="Weather?", tools=tools, tool_choice="required")
    fc = [o for o in call.output if o.type == "function_call"]
    check(f"responses function call ({model})", fc and fc[0].name == "get_weather" and fc[0].call_id, call)
    after = client.responses.create(model=model, previous_response_id=call.id, tools=tools, input=[
        {"type": "function_call_output", "call_id": fc[0].call_id, "output": "sunny"}])
    check(f"responses function call output ({model})", after.output_text, after)
    events = list(client.responses.create(model=model, input="Weather?", tools=tools,
                                          tool_choice="required", stream=True))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    check(f"responses streamed function call ({model})", done and events[-1].type == "response.completed"
          and events[-1].response.output[0].type == "function_call", [e.type for e in events])

claude = client.responses.create(model="mock-claude", input="hi", instructions="Be brief.", max_output_tokens=50)
check("responses.create (translated)", claude.status == "completed" and claude.output_text
      and claude.usage.input_tokens > 0, claude)
events = list(client.responses.create(model="mock-claude", input="hi", stream=True))
streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
check("responses stream (translated)", events[-1].type == "response.completed"
      and streamed == events[-1].response.output_text, [e.type for e in events])

client.responses.delete(resp.id)
try:
    client.responses.retrieve(resp.id)
    check("responses.delete", False)
except openai.NotFoundError:
    check("responses.delete (then retrieve raises NotFoundError)", True)

ids = [m.id for m in client.models.list()]
check("models", "mock-gpt" in ids, ids)

try:
    openai.OpenAI(base_url=base + "/v1", api_key="sk-wrong-0000000000", max_retries=0).models.list()
    check("auth error", False)
except openai.AuthenticationError:
    check("auth error raises AuthenticationError", True)

for mode, exc in [("429", openai.RateLimitError), ("500", openai.InternalServerError),
                  ("context_length", openai.BadRequestError)]:
    try:
        client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"mock_fail": mode})
        check(f"{mode} raises {exc.__name__}", False)
    except exc as err:
        if mode == "context_length":
            check("context length code", err.code == "context_length_exceeded", err)
        check(f"{mode} raises {exc.__name__}", True)

try:
    for _ in client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}],
                                            stream=True, extra_body={"mock_fail": "cut"}):
        pass
    check("cut stream raises", False)
except openai.APIError:
    check("cut stream raises APIError", True)

print("all SDK checks passed")
