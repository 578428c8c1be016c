"""Drives moat's /v1/messages with the official anthropic SDK; prints what it observed as JSON.

Run by crates/moat/tests/e2e_llama.rs with ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY and
MESSAGES_MODEL set. Each call keeps the request id moat returned, to match its usage record.
"""

import json
import os
import sys

import anthropic

client = anthropic.Anthropic(max_retries=0, timeout=60)
model = os.environ["MESSAGES_MODEL"]
messages = [{"role": "user", "content": "Name three colours."}]
STOP = ["<|im_end|>"]
calls = []


def usage_of(usage):
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens or 0,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens or 0,
    }


# 1. Non-streaming, with a system prompt in blocks.
message = client.messages.create(
    model=model, max_tokens=16, stop_sequences=STOP,
    system=[{"type": "text", "text": "You are brief."}], messages=messages,
)
calls.append({"kind": "message", "request_id": message._request_id, "usage": usage_of(message.usage),
              "stop_reason": message.stop_reason, "text": "".join(b.text for b in message.content if b.type == "text")})

# 2. Streaming through the SDK's event parser (it needs every frame's `event:` line).
with client.messages.stream(model=model, max_tokens=16, stop_sequences=STOP, messages=messages) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
    request_id = stream.response.headers.get("request-id")
calls.append({"kind": "message_stream", "request_id": request_id, "usage": usage_of(final.usage), "text": text})

# 3. Tools: a forced tool_choice, whole and streamed (the SDK assembles any `input_json_delta`
#    pieces), then a tool_use/tool_result history sent back.
TOOLS = [{
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]
FORCED = {"type": "tool", "name": "get_weather"}
ask = [{"role": "user", "content": "What is the weather in Paris?"}]


def tool_calls(message):
    return [{"id": b.id, "name": b.name, "input": b.input} for b in message.content if b.type == "tool_use"]


called = client.messages.create(model=model, max_tokens=64, tools=TOOLS, tool_choice=FORCED, messages=ask)
calls.append({"kind": "tool_call", "request_id": called._request_id, "usage": usage_of(called.usage),
              "stop_reason": called.stop_reason, "tool_calls": tool_calls(called)})
with client.messages.stream(model=model, max_tokens=64, tools=TOOLS, tool_choice=FORCED, messages=ask) as stream:
    streamed = stream.get_final_message()
    request_id = stream.response.headers.get("request-id")
calls.append({"kind": "tool_call_stream", "request_id": request_id, "usage": usage_of(streamed.usage),
              "stop_reason": streamed.stop_reason, "tool_calls": tool_calls(streamed)})
first = tool_calls(called)[0] if tool_calls(called) else {"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
followup = ask + [
    {"role": "assistant", "content": [{"type": "tool_use", **first}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first["id"], "content": "Sunny, 21 C."}]},
]
answered = client.messages.create(model=model, max_tokens=16, stop_sequences=STOP, tools=TOOLS, messages=followup)
calls.append({"kind": "tool_result", "request_id": answered._request_id, "usage": usage_of(answered.usage),
              "stop_reason": answered.stop_reason})

# 4. count_tokens.
counted = client.messages.count_tokens(model=model, messages=messages)

# 5. Errors arrive as the SDK's typed exceptions.
errors = {}
try:
    anthropic.Anthropic(api_key="moat_sk_wrong", max_retries=0).messages.create(model=model, max_tokens=4, messages=messages)
except anthropic.AuthenticationError as e:
    errors["bad_key"] = {"status": e.status_code, "type": e.body["error"]["type"]}
try:
    client.messages.create(model="claude-opus-4-unknown", max_tokens=4, messages=messages)
except anthropic.NotFoundError as e:
    errors["unknown_model"] = {"status": e.status_code, "type": e.body["error"]["type"]}

json.dump({"calls": calls, "count_tokens": counted.input_tokens, "errors": errors}, sys.stdout)
