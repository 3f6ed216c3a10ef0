"""The official `openai` Python SDK against aipipe (filter/README.md,
"Client protocols": POST /v1/chat/completions, GET /v1/models):

    .venv/bin/python tests/sdk/openai_cases.py --port 10000 --key <virtual key> CASE [MODEL]
    .venv/bin/python tests/sdk/openai_cases.py --port … --key … --mock-port … --batch < cases.json

(tests/tests/sdk.rs runs the batch form against its own stack).

CASE: plain, stream, stream_usage, tools, stream_tools, image, models,
reasoning_tools and stream_reasoning_tools (gpt-6-luna: the gateway answers
from OpenAI's Responses API, the reasoning in the message's
`reasoning_details`, and the client sends the message back as the SDK gave it).
MODEL: "auto" (routed by complexity), a catalog id (gpt-4o-mini,
claude-opus-4-5, …) — Anthropic models are answered through the filter's
OpenAI ⇄ Anthropic translation, so the SDK must parse them the same way.
"""

import json
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts

from _common import (  # noqa: E402
    CHAT_WEATHER_TOOL as WEATHER_TOOL,
    GREETING,
    IMAGE_QUESTION,
    PNG_1X1,
    SYSTEM,
    WEATHER,
    WEATHER_RESULT,
    aipipe_headers,
    CaseFailed,
    check,
    check_event_stream,
    check_weather_call,
    openai_client,
    require,
    run,
)

openai, VERSION = require("openai")


def client_for(port, key):
    return openai_client(openai, port, key)


def completion_report(raw):
    """Parses a non-streamed answer and checks what every answer must hold."""
    c = raw.parse()
    check(isinstance(c, openai.types.chat.ChatCompletion), f"parsed to {type(c)}")
    check(c.object == "chat.completion", f"object is {c.object!r}")
    check(len(c.choices) == 1, f"{len(c.choices)} choices")
    choice = c.choices[0]
    msg = choice.message
    check(msg.role == "assistant", f"role {msg.role!r}")
    check(c.usage is not None, "no usage in the answer")
    u = c.usage
    check(u.prompt_tokens > 0 and u.completion_tokens > 0, f"usage {u}")
    check(u.total_tokens == u.prompt_tokens + u.completion_tokens, f"usage total {u}")
    calls = [
        {"id": t.id, "type": t.type, "name": t.function.name, "arguments": t.function.arguments}
        for t in (msg.tool_calls or [])
    ]
    for t in calls:
        check(t["type"] == "function", f"tool call type {t['type']!r}")
        check(t["id"], "tool call without an id")
        try:
            t["arguments"] = json.loads(t["arguments"])
        except ValueError as e:
            raise CaseFailed(f"tool call arguments are not JSON: {t['arguments']!r}: {e}")
    if calls:
        check(choice.finish_reason == "tool_calls", f"tool calls with finish_reason {choice.finish_reason!r}")
    else:
        check(isinstance(msg.content, str) and msg.content, f"no text content: {msg!r}")
    return {
        "headers": aipipe_headers(raw.headers),
        "id": c.id,
        "answer_model": c.model,
        "content": msg.content,
        "finish_reason": choice.finish_reason,
        "tool_calls": calls,
        "usage": {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens,
        },
    }


def plain(client, model, prompt):
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": prompt or GREETING},
        ],
        max_tokens=256,
        temperature=0.5,
    )
    return completion_report(raw)


def streamed(client, model, prompt, include_usage, tools=None):
    """Streams an answer, reassembling its content and tool calls from the chunks."""
    kwargs = {}
    if include_usage:
        kwargs["stream_options"] = {"include_usage": True}
    if tools:
        kwargs["tools"] = tools
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": prompt or GREETING}],
        max_tokens=256,
        stream=True,
        **kwargs,
    )
    headers = aipipe_headers(raw.headers)
    check_event_stream(raw.headers)
    content, finish, usage, n, ids, roles = [], None, [], 0, set(), []
    calls = {}
    for chunk in raw.parse():
        n += 1
        check(isinstance(chunk, openai.types.chat.ChatCompletionChunk), f"chunk parsed to {type(chunk)}")
        check(chunk.object == "chat.completion.chunk", f"chunk object {chunk.object!r}")
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage.append(chunk.usage)
            check(chunk.choices == [], f"the usage chunk has choices: {chunk.choices}")
        for ch in chunk.choices:
            d = ch.delta
            if d.role:
                roles.append(d.role)
            if d.content:
                content.append(d.content)
            for t in d.tool_calls or []:
                slot = calls.setdefault(t.index, {"id": None, "name": "", "arguments": ""})
                if t.id:
                    slot["id"] = t.id
                if t.function and t.function.name:
                    slot["name"] += t.function.name
                if t.function and t.function.arguments:
                    slot["arguments"] += t.function.arguments
            if ch.finish_reason:
                check(finish is None, f"two finish reasons: {finish!r}, {ch.finish_reason!r}")
                finish = ch.finish_reason
    check(n > 1, f"only {n} chunks")
    check(len(ids) == 1, f"chunks carry {len(ids)} different ids: {ids}")
    check(roles[:1] == ["assistant"], f"delta roles {roles}")
    check(finish is not None, "no chunk carried a finish_reason")
    if include_usage:
        check(len(usage) == 1, f"{len(usage)} usage chunks, want exactly one (the last)")
        u = usage[0]
        check(u.prompt_tokens > 0 and u.completion_tokens > 0, f"usage {u}")
        check(u.total_tokens == u.prompt_tokens + u.completion_tokens, f"usage total {u}")
    else:
        check(usage == [], f"usage chunks the client did not ask for: {usage}")
    tool_calls = []
    for i in sorted(calls):
        t = calls[i]
        try:
            args = json.loads(t["arguments"])
        except ValueError as e:
            raise CaseFailed(f"streamed tool call {i} arguments are not JSON: {t['arguments']!r}: {e}")
        check(t["id"] and t["name"], f"streamed tool call {i} without id or name: {t}")
        tool_calls.append({"id": t["id"], "name": t["name"], "arguments": args})
    text = "".join(content)
    if not tool_calls:
        check(text, "the stream spelled out no content")
    return {
        "headers": headers,
        "chunks": n,
        "content": text,
        "finish_reason": finish,
        "tool_calls": tool_calls,
        "usage": (
            {
                "prompt_tokens": usage[0].prompt_tokens,
                "completion_tokens": usage[0].completion_tokens,
                "total_tokens": usage[0].total_tokens,
            }
            if usage
            else None
        ),
    }


def stream(client, model, prompt):
    return streamed(client, model, prompt, include_usage=False)


def stream_usage(client, model, prompt):
    return streamed(client, model, prompt, include_usage=True)


def tools(client, model, prompt):
    """A function tool, then the tool result sent back: both answers parsed."""
    question = [{"role": "user", "content": prompt or WEATHER}]
    first = completion_report(
        client.chat.completions.with_raw_response.create(
            model=model, messages=question, tools=[WEATHER_TOOL], tool_choice="auto", max_tokens=256
        )
    )
    # The SDK must have parsed a real call (message.tool_calls[0].function.name / .arguments).
    call = check_weather_call(first["tool_calls"], question)
    # The second turn: the model's own call and its result.
    second = completion_report(
        client.chat.completions.with_raw_response.create(
            model=model,
            messages=question
            + [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call["id"], "content": WEATHER_RESULT},
            ],
            tools=[WEATHER_TOOL],
            max_tokens=256,
        )
    )
    check(second["tool_calls"] == [], f"the tool result was answered with more calls: {second['tool_calls']}")
    return {"first": first, "second": second, "headers": first["headers"]}


def stream_tools(client, model, prompt):
    report = streamed(client, model, prompt or WEATHER, include_usage=True, tools=[WEATHER_TOOL])
    check(len(report["tool_calls"]) == 1, f"want one streamed tool call, got {report['tool_calls']}")
    check(report["finish_reason"] == "tool_calls", f"finish_reason {report['finish_reason']!r}")
    return report


def reasoning_details_of(obj):
    """The `reasoning_details` the SDK kept on a message or a delta (not a
    field of its models: an extra member, as OpenRouter's clients read it)."""
    extra = getattr(obj, "model_extra", None) or {}
    return extra.get("reasoning_details") or []


def reasoning_tools(client, model, prompt, stream=False):
    """A reasoning model's tool loop over Chat Completions: the assistant
    message goes back as the SDK returned it (streamed: as reassembled from
    the chunks, `reasoning_details` included), so the model gets its own
    reasoning again beside the call and its output."""
    question = [{"role": "user", "content": prompt or WEATHER}]
    ask = dict(model=model, tools=[WEATHER_TOOL], reasoning_effort="low", max_completion_tokens=512)
    if stream:
        raw = client.chat.completions.with_raw_response.create(messages=question, stream=True, **ask)
        headers = aipipe_headers(raw.headers)
        calls, details = {}, []
        for chunk in raw.parse():
            for ch in chunk.choices:
                details += reasoning_details_of(ch.delta)
                for t in ch.delta.tool_calls or []:
                    slot = calls.setdefault(t.index, {"id": None, "name": "", "arguments": ""})
                    slot["id"] = t.id or slot["id"]
                    slot["name"] += (t.function and t.function.name) or ""
                    slot["arguments"] += (t.function and t.function.arguments) or ""
        tool_calls = [{**calls[i], "arguments": json.loads(calls[i]["arguments"])} for i in sorted(calls)]
        first = {"headers": headers, "tool_calls": tool_calls, "reasoning_details": details}
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                for c in tool_calls
            ],
            "reasoning_details": details,
        }
    else:
        raw = client.chat.completions.with_raw_response.create(messages=question, **ask)
        first = completion_report(raw)
        message = raw.parse().choices[0].message
        first["reasoning_details"] = reasoning_details_of(message)
    call = check_weather_call(first["tool_calls"], question)
    check(first["reasoning_details"], "no reasoning_details in the first answer")
    second = completion_report(
        client.chat.completions.with_raw_response.create(
            messages=question + [message, {"role": "tool", "tool_call_id": call["id"], "content": WEATHER_RESULT}],
            **ask,
        )
    )
    check(second["tool_calls"] == [], f"the tool result was answered with more calls: {second['tool_calls']}")
    return {"first": first, "second": second, "headers": first["headers"]}


def stream_reasoning_tools(client, model, prompt):
    return reasoning_tools(client, model, prompt, stream=True)


def image(client, model, prompt):
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt or IMAGE_QUESTION},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1X1}"}},
                ],
            }
        ],
        max_tokens=256,
    )
    return completion_report(raw)


def models(client, _model, _prompt):
    raw = client.models.with_raw_response.list()
    page = raw.parse()
    items = list(page)
    for m in items:
        check(isinstance(m, openai.types.Model), f"parsed to {type(m)}")
        check(m.object == "model", f"object {m.object!r}")
    ids = [m.id for m in items]
    check(len(set(ids)) == len(ids), f"duplicate ids: {ids}")
    return {"ids": ids, "owned_by": {m.id: m.owned_by for m in items}, "headers": aipipe_headers(raw.headers)}


CASES = {
    "plain": plain,
    "stream": stream,
    "stream_usage": stream_usage,
    "tools": tools,
    "stream_tools": stream_tools,
    "image": image,
    "reasoning_tools": reasoning_tools,
    "stream_reasoning_tools": stream_reasoning_tools,
    "models": models,
}

if __name__ == "__main__":
    run("openai", VERSION, CASES, client_for, (openai.APIStatusError, openai.APIConnectionError))
