"""Drives moat with the official openai SDK; prints one JSON object with what it observed.

Run by crates/moat/tests/e2e_llama.rs with OPENAI_BASE_URL, OPENAI_API_KEY, CHAT_MODEL and
EMBED_MODEL set. Every call records the request id moat returned, so the Rust side can match
each call to its usage record exactly.
"""

import json
import os
import sys

import openai

STOP = ["<|im_end|>"]
client = openai.OpenAI(max_retries=0, timeout=60)
chat_model = os.environ["CHAT_MODEL"]
embed_model = os.environ["EMBED_MODEL"]
messages = [{"role": "user", "content": "Name three colours."}]
calls = []


def usage_of(usage):
    if usage is None:
        return None
    details = getattr(usage, "prompt_tokens_details", None)
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": getattr(usage, "completion_tokens", 0) or 0,
        "cached_tokens": (getattr(details, "cached_tokens", 0) or 0) if details else 0,
    }


# 1. Non-streaming chat.
completion = client.chat.completions.create(model=chat_model, messages=messages, max_tokens=16, stop=STOP)
calls.append({
    "kind": "chat",
    "request_id": completion._request_id,
    "usage": usage_of(completion.usage),
    "text": completion.choices[0].message.content,
})

def streamed_chat(kind, model):
    """A streamed chat that asks for usage; records what the client saw."""
    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=16, stop=STOP, stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    calls.append({"kind": kind, "request_id": stream.response.headers.get("x-request-id"),
                  "usage": usage_of(usage), "text": text})


# 2. Streaming chat, the client asks for usage.
streamed_chat("chat_stream_usage", chat_model)

# 3. Streaming chat without usage: moat meters it anyway and must not show the client a usage chunk.
stream = client.chat.completions.create(model=chat_model, messages=messages, max_tokens=16, stop=STOP, stream=True)
text, saw_usage, chunks = "", False, 0
for chunk in stream:
    chunks += 1
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage is not None:
        saw_usage = True
calls.append({"kind": "chat_stream_plain", "request_id": stream.response.headers.get("x-request-id"), "usage": None, "text": text, "saw_usage": saw_usage, "chunks": chunks})

# 4. Legacy completions.
legacy = client.completions.create(model=chat_model, prompt="The sky is", max_tokens=8)
calls.append({"kind": "completion", "request_id": legacy._request_id, "usage": usage_of(legacy.usage), "text": legacy.choices[0].text})

# 5. Embeddings.
embedding = client.embeddings.create(model=embed_model, input="open-weight models inside the walls")
calls.append({
    "kind": "embedding",
    "request_id": embedding._request_id,
    "usage": {"prompt_tokens": embedding.usage.prompt_tokens, "completion_tokens": 0, "cached_tokens": 0},
    "dimensions": len(embedding.data[0].embedding),
})

# 6. The same chat API on a model whose deployment speaks only Anthropic Messages: translated.
via_messages = os.environ.get("MESSAGES_BACKED_MODEL")
if via_messages:
    completion = client.chat.completions.create(model=via_messages, messages=messages, max_tokens=16, stop=STOP)
    calls.append({"kind": "chat_via_messages", "request_id": completion._request_id,
                  "usage": usage_of(completion.usage), "text": completion.choices[0].message.content})
    streamed_chat("chat_stream_via_messages", via_messages)

# 7. Errors arrive as the SDK's typed exceptions, with moat's codes.
errors = {}
try:
    openai.OpenAI(api_key="moat_sk_wrong", max_retries=0).chat.completions.create(model=chat_model, messages=messages)
except openai.AuthenticationError as e:
    errors["bad_key"] = {"status": e.status_code, "code": e.code}
try:
    client.chat.completions.create(model="no-such-model", messages=messages)
except openai.NotFoundError as e:
    errors["unknown_model"] = {"status": e.status_code, "code": e.code}

models = [m.id for m in client.models.list()]
json.dump({"calls": calls, "errors": errors, "models": models}, sys.stdout)
