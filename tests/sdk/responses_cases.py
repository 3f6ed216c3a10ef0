"""The official `openai` Python SDK's Responses API against aipipe (POST
/v1/responses, translated to Chat Completions and back by the filter):

    .venv/bin/python tests/sdk/responses_cases.py --port 10000 --key <virtual key> CASE [MODEL]
    .venv/bin/python tests/sdk/responses_cases.py --port … --key … --mock-port … --batch < cases.json

(tests/tests/client_protocols.rs runs the batch form against its own stack).

CASE: plain, stream, tools, stream_tools, reasoning_tools and
stream_reasoning_tools (gpt-6-luna: the request and its answer go to and from
OpenAI's Responses API as they are).
MODEL: "auto" (routed by complexity) or a catalog id: gpt-4o-mini (the
provider answers Chat Completions) or claude-opus-4-5 (the filter also
translates to and from Anthropic Messages) — the SDK must parse both alike.
"""

import json
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts

from _common import (  # noqa: E402
    GREETING,
    SYSTEM,
    WEATHER,
    WEATHER_FUNCTION,
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

# The Responses API's function tools are flat (no nested `function`).
WEATHER_TOOL = {"type": "function", **WEATHER_FUNCTION, "strict": False}


def client_for(port, key):
    return openai_client(openai, port, key)


def usage_report(u):
    check(u is not None, "no usage in the response")
    check(u.input_tokens > 0 and u.output_tokens > 0, f"usage {u}")
    check(u.total_tokens == u.input_tokens + u.output_tokens, f"usage total {u}")
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "cached_tokens": u.input_tokens_details.cached_tokens,
        "reasoning_tokens": u.output_tokens_details.reasoning_tokens,
    }


def calls_of(output):
    """The function calls among the output items, arguments parsed."""
    calls = []
    for item in output:
        if item.type != "function_call":
            continue
        check(item.call_id, f"function call without a call_id: {item}")
        try:
            args = json.loads(item.arguments)
        except ValueError as e:
            raise CaseFailed(f"function call arguments are not JSON: {item.arguments!r}: {e}")
        calls.append({"id": item.id, "call_id": item.call_id, "name": item.name, "arguments": args})
    return calls


def response_report(r, headers):
    """Checks what every whole response must hold and reports it."""
    check(isinstance(r, openai.types.responses.Response), f"parsed to {type(r)}")
    check(r.object == "response", f"object is {r.object!r}")
    check(r.id.startswith("resp_"), f"id {r.id!r}")
    check(r.status == "completed", f"status {r.status!r} ({r.incomplete_details}, {r.error})")
    check(r.error is None, f"error {r.error}")
    check(r.created_at > 0, f"created_at {r.created_at}")
    for item in r.output:
        check(item.type in ("message", "function_call", "reasoning"), f"output item {item.type!r}")
        if item.type == "reasoning":
            check(item.id.startswith("rs_"), f"reasoning id {item.id!r}")
        if item.type == "message":
            check(item.role == "assistant" and item.status == "completed", f"message item {item}")
            check(item.id.startswith("msg_"), f"message id {item.id!r}")
    calls = calls_of(r.output)
    if not calls:
        check(r.output_text, f"no text and no function call: {r.output}")
    return {
        "headers": headers,
        "id": r.id,
        "answer_model": r.model,
        "status": r.status,
        "content": r.output_text,
        "items": [item.type for item in r.output],
        "encrypted_reasoning": [item.encrypted_content for item in r.output if item.type == "reasoning"],
        "tool_calls": calls,
        "usage": usage_report(r.usage),
    }


def create(client, **kwargs):
    raw = client.responses.with_raw_response.create(**kwargs)
    return response_report(raw.parse(), aipipe_headers(raw.headers))


def plain(client, model, prompt):
    return create(
        client,
        model=model,
        instructions=SYSTEM,
        input=prompt or GREETING,
        max_output_tokens=256,
        temperature=0.5,
    )


def streamed(client, model, prompt, tools=None):
    """Streams a response, checking the event sequence and rebuilding the
    text and the function calls from the deltas."""
    kwargs = {"tools": tools} if tools else {}
    report, _ = stream_events(
        client,
        model=model,
        instructions=SYSTEM,
        input=[{"role": "user", "content": prompt or GREETING}],
        max_output_tokens=256,
        **kwargs,
    )
    return report


def stream_events(client, **create):
    """Streams one response of `create`'s parameters; its report and the
    final response object."""
    raw = client.responses.with_raw_response.create(stream=True, **create)
    headers = aipipe_headers(raw.headers)
    check_event_stream(raw.headers)
    types, text, arguments, added, done_items = [], [], {}, {}, {}
    final = None
    for n, event in enumerate(raw.parse()):
        types.append(event.type)
        check(event.sequence_number == n, f"event {n} ({event.type}) has sequence_number {event.sequence_number}")
        check(final is None, f"{event.type} after the final event {types[-2:-1]}")
        if event.type == "response.output_item.added":
            check(event.output_index not in added, f"output index {event.output_index} added twice")
            added[event.output_index] = event.item
        elif event.type == "response.output_text.delta":
            check(event.output_index in added, f"text delta for unknown output index {event.output_index}")
            text.append(event.delta)
        elif event.type == "response.function_call_arguments.delta":
            arguments[event.output_index] = arguments.get(event.output_index, "") + event.delta
        elif event.type == "response.output_item.done":
            done_items[event.output_index] = event.item
        elif event.type in ("response.completed", "response.incomplete", "response.failed"):
            final = event.response
    check(types[:2] == ["response.created", "response.in_progress"], f"first events {types[:2]}")
    check(final is not None and types[-1] == "response.completed", f"the stream ended with {types[-1:]}")
    check(sorted(added) == sorted(done_items), f"items added {sorted(added)}, done {sorted(done_items)}")
    streamed_text = "".join(text)
    check(streamed_text == final.output_text, f"deltas spell {streamed_text!r}, the response says {final.output_text!r}")
    for index, args in arguments.items():
        check(done_items[index].arguments == args, f"item {index}: deltas {args!r}, done {done_items[index].arguments!r}")
    report = response_report(final, headers)
    report.update(events=sorted(set(types)), event_count=len(types))
    return report, final


def stream(client, model, prompt):
    return streamed(client, model, prompt)


def stream_tools(client, model, prompt):
    report = streamed(client, model, prompt or WEATHER, tools=[WEATHER_TOOL])
    check_weather_call(report["tool_calls"], prompt or WEATHER)
    check("response.function_call_arguments.delta" in report["events"], f"events {report['events']}")
    return report


def tools(client, model, prompt):
    """A function tool, then its output sent back with the whole
    conversation (aipipe keeps no state): both responses parsed."""
    question = [{"role": "user", "content": prompt or WEATHER}]
    raw = client.responses.with_raw_response.create(
        model=model, input=question, tools=[WEATHER_TOOL], tool_choice="auto", max_output_tokens=256
    )
    first_response = raw.parse()
    first = response_report(first_response, aipipe_headers(raw.headers))
    call = check_weather_call(first["tool_calls"], question)
    # What the SDK's users do: the earlier output items go back as input.
    conversation = (
        question
        + [item.model_dump(exclude_none=True) for item in first_response.output]
        + [{"type": "function_call_output", "call_id": call["call_id"], "output": WEATHER_RESULT}]
    )
    second = create(client, model=model, input=conversation, tools=[WEATHER_TOOL], max_output_tokens=256)
    check(second["tool_calls"] == [], f"a second call after the result: {second['tool_calls']}")
    check(second["content"], "no answer after the tool result")
    return {"headers": first["headers"], "first": first, "second": second}


def reasoning_tools(client, model, prompt, stream=False):
    """A reasoning model's tool loop as Codex and the Agents SDK run it
    without state on OpenAI: `store: false`, the reasoning returned
    encrypted, and sent back beside the call and its output on the next
    turn, so the model goes on from its own reasoning. Streamed, as Codex
    streams, with `stream`."""
    question = [{"role": "user", "content": prompt or WEATHER}]
    ask = dict(
        model=model,
        tools=[WEATHER_TOOL],
        reasoning={"effort": "low"},
        include=["reasoning.encrypted_content"],
        store=False,
        max_output_tokens=512,
    )
    if stream:
        first, first_response = stream_events(client, input=question, **ask)
    else:
        raw = client.responses.with_raw_response.create(input=question, **ask)
        first_response = raw.parse()
        first = response_report(first_response, aipipe_headers(raw.headers))
    call = check_weather_call(first["tool_calls"], question)
    check(first["encrypted_reasoning"] and all(first["encrypted_reasoning"]), f"no encrypted reasoning: {first['items']}")
    conversation = (
        question
        + [item.model_dump(exclude_none=True) for item in first_response.output]
        + [{"type": "function_call_output", "call_id": call["call_id"], "output": WEATHER_RESULT}]
    )
    if stream:
        second, _ = stream_events(client, input=conversation, **ask)
    else:
        second = create(client, input=conversation, **ask)
    check(second["tool_calls"] == [], f"a second call after the result: {second['tool_calls']}")
    check(second["content"], "no answer after the tool result")
    return {"headers": first["headers"], "first": first, "second": second}


def stream_reasoning_tools(client, model, prompt):
    return reasoning_tools(client, model, prompt, stream=True)


CASES = {
    "plain": plain,
    "stream": stream,
    "tools": tools,
    "stream_tools": stream_tools,
    "reasoning_tools": reasoning_tools,
    "stream_reasoning_tools": stream_reasoning_tools,
}

if __name__ == "__main__":
    run("openai-responses", VERSION, CASES, client_for, (openai.APIStatusError, openai.APIConnectionError))
