"""The official `anthropic` Python SDK against aipipe (filter/README.md,
"Client protocols": POST /v1/messages, the virtual key in `x-api-key`):

    .venv/bin/python tests/sdk/anthropic_cases.py --port 10000 --key <virtual key> CASE [MODEL]
    .venv/bin/python tests/sdk/anthropic_cases.py --port … --key … --mock-port … --batch < cases.json

(tests/tests/sdk.rs runs the batch form against its own stack).

CASE: plain, stream, tools, stream_tools, image.
MODEL: "auto" (routed by complexity, like chat completions), an Anthropic
model (claude-opus-4-5: forwarded as Anthropic Messages) or an
OpenAI-format one (gpt-4o-mini: translated to Chat Completions and back) —
the SDK must parse every answer the same way.
"""

import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts

from _common import (  # noqa: E402
    GREETING,
    IMAGE_QUESTION,
    PNG_1X1,
    SYSTEM,
    WEATHER,
    WEATHER_FUNCTION,
    WEATHER_RESULT,
    aipipe_headers,
    CaseFailed,
    check,
    check_event_stream,
    check_weather_call,
    require,
    run,
)

anthropic, VERSION = require("anthropic")

WEATHER_TOOL = {
    "name": WEATHER_FUNCTION["name"],
    "description": WEATHER_FUNCTION["description"],
    "input_schema": WEATHER_FUNCTION["parameters"],
}
RAW_EVENTS = {
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
}
STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}


def client_for(port, key):
    return anthropic.Anthropic(
        base_url=f"http://127.0.0.1:{port}",
        api_key=key,
        max_retries=0,
        timeout=20.0,
    )


def message_report(m, headers):
    """Checks what every parsed Message must hold; returns what it says."""
    check(isinstance(m, anthropic.types.Message), f"parsed to {type(m)}")
    check(m.type == "message", f"type {m.type!r}")
    check(m.role == "assistant", f"role {m.role!r}")
    check(m.id, "no message id")
    check(m.stop_reason in STOP_REASONS, f"stop_reason {m.stop_reason!r}")
    check(m.content, "no content blocks")
    u = m.usage
    check(u.input_tokens > 0 and u.output_tokens > 0, f"usage {u}")
    text, calls = [], []
    for i, b in enumerate(m.content):
        if b.type in ("thinking", "redacted_thinking"):
            # A Claude 5.x thinks by default: its blocks come first, signed.
            check(all(p.type in ("thinking", "redacted_thinking") for p in m.content[:i]), f"thinking after an answer block: {m.content}")
            check(b.signature and isinstance(b.thinking, str) if b.type == "thinking" else b.data, f"unsigned thinking: {b}")
        elif b.type == "text":
            text.append(b.text)
        elif b.type == "tool_use":
            check(isinstance(b, anthropic.types.ToolUseBlock), f"tool_use parsed to {type(b)}")
            check(b.id and b.name, f"tool_use block without id or name: {b}")
            check(isinstance(b.input, dict), f"tool_use input {b.input!r}")
            calls.append({"id": b.id, "name": b.name, "input": b.input})
        else:
            raise CaseFailed(f"unexpected content block {b.type!r}: {b}")
    if calls:
        check(m.stop_reason == "tool_use", f"tool_use blocks with stop_reason {m.stop_reason!r}")
    else:
        check("".join(text), f"no text in {m.content}")
    return {
        "headers": headers,
        "id": m.id,
        "answer_model": m.model,
        "content": "".join(text),
        "blocks": [b.type for b in m.content],
        "stop_reason": m.stop_reason,
        "tool_calls": calls,
        "usage": {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
        },
    }


def create(client, **kwargs):
    raw = client.messages.with_raw_response.create(max_tokens=256, **kwargs)
    return message_report(raw.parse(), aipipe_headers(raw.headers))


def plain(client, model, prompt):
    return create(
        client,
        model=model,
        system=SYSTEM,
        messages=[{"role": "user", "content": prompt or GREETING}],
        stop_sequences=["###"],
    )


def streamed(client, model, prompt, tools=None):
    """`client.messages.stream`: the raw event sequence, the text events and
    the SDK's accumulated final message must agree."""
    kwargs = {"tools": tools} if tools else {}
    events, text, deltas = [], [], []
    with client.messages.stream(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": prompt or GREETING}],
        **kwargs,
    ) as s:
        headers = aipipe_headers(s.response.headers)
        check_event_stream(s.response.headers)
        for event in s:
            if event.type in RAW_EVENTS:
                events.append(event.type)
                if event.type == "content_block_delta":
                    deltas.append(event.delta.type)
            elif event.type == "text":
                text.append(event.text)
        final = s.get_final_message()
    check(events[:1] == ["message_start"], f"the stream does not start with message_start: {events[:3]}")
    check(events[-2:] == ["message_delta", "message_stop"], f"the stream ends with {events[-2:]}")
    check(events.count("content_block_start") == events.count("content_block_stop"), f"unbalanced blocks: {events}")
    check("content_block_delta" in events, f"no deltas: {events}")
    report = message_report(final, headers)
    check("".join(text) == report["content"], f"text events {''.join(text)!r} != final {report['content']!r}")
    report["events"] = events
    report["deltas"] = sorted(set(deltas))
    return report


def stream(client, model, prompt):
    return streamed(client, model, prompt)


def tools(client, model, prompt):
    """A tool, then the tool result sent back: both answers parsed."""
    question = [{"role": "user", "content": prompt or WEATHER}]
    first = create(client, model=model, messages=question, tools=[WEATHER_TOOL], tool_choice={"type": "auto"})
    # Both mocks call the tool for a weather question (an OpenAI-format
    # model's tool_calls translated by the filter): the SDK must have parsed
    # a real ToolUseBlock.
    call = check_weather_call(first["tool_calls"], question, args="input")
    second = create(
        client,
        model=model,
        tools=[WEATHER_TOOL],
        messages=question
        + [
            {"role": "assistant", "content": [{"type": "tool_use", **call}]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": WEATHER_RESULT}],
            },
        ],
    )
    check(second["tool_calls"] == [], f"the tool result was answered with more calls: {second['tool_calls']}")
    return {"first": first, "second": second, "headers": first["headers"]}


def stream_tools(client, model, prompt):
    report = streamed(client, model, prompt or WEATHER, tools=[WEATHER_TOOL])
    check(len(report["tool_calls"]) == 1, f"want one streamed tool_use block, got {report['tool_calls']}")
    check("input_json_delta" in report["deltas"], f"no input_json_delta in {report['deltas']}")
    return report


def image(client, model, prompt):
    return create(
        client,
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1}},
                    {"type": "text", "text": prompt or IMAGE_QUESTION},
                ],
            }
        ],
    )


CASES = {
    "plain": plain,
    "stream": stream,
    "tools": tools,
    "stream_tools": stream_tools,
    "image": image,
}

if __name__ == "__main__":
    run("anthropic", VERSION, CASES, client_for, (anthropic.APIStatusError, anthropic.APIConnectionError))
