"""The official `ollama` Python client against aipipe, as if it were an
Ollama server (POST /api/chat and /api/generate, GET /api/tags):

    .venv/bin/python tests/sdk/ollama_cases.py --port 10000 --key <virtual key> CASE [MODEL]
    .venv/bin/python tests/sdk/ollama_cases.py --port … --key … --mock-port … --batch < cases.json

(tests/tests/client_protocols.rs runs the batch form against its own stack).

CASE: chat, stream, generate, generate_stream, tools, image, list.
MODEL: "auto" (routed by complexity) or a catalog id (gpt-4o-mini,
claude-opus-4-5, …). The virtual key goes as `Authorization: Bearer`, the
way Open WebUI sends an Ollama connection's key.
"""

import importlib.metadata
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
    check_weather_call,
    require,
    run,
)

ollama, _ = require("ollama")
VERSION = importlib.metadata.version("ollama")


class Ollama:
    """The client, and the x-aipipe-* headers of every answer it got (the
    ollama client returns parsed bodies only; an httpx hook keeps them)."""

    def __init__(self, port, key):
        self.seen = []
        self.client = ollama.Client(
            host=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=20.0,
            event_hooks={"response": [self._keep_headers]},
        )

    def _keep_headers(self, response):
        self.seen.append({"status": response.status_code, **aipipe_headers(response.headers)})

    def call(self, method, **kwargs):
        """Calls the client; an HTTP error or an error line in a stream
        becomes a failure that says what aipipe answered."""
        try:
            result = getattr(self.client, method)(**kwargs)
            if kwargs.get("stream"):
                result = list(result)
            return result
        except ollama.ResponseError as e:
            raise CaseFailed(f"{method}: HTTP {e.status_code}: {e.error} (headers {self.seen[-1:]})")

    def headers(self):
        check(self.seen, "no answer was received")
        headers = dict(self.seen[-1])
        check(headers.pop("status") == 200, f"status {self.seen[-1]}")
        return headers


class _NoStatusError(Exception):
    """The ollama client's HTTP errors carry no request: `Ollama.call`
    reports them instead of `_common`."""


def client_for(port, key):
    return Ollama(port, key)


def end_report(r):
    """What the last object of every answer must hold."""
    check(r.done is True, f"done {r.done!r}")
    check(r.done_reason in ("stop", "length"), f"done_reason {r.done_reason!r}")
    check(r.prompt_eval_count and r.prompt_eval_count > 0, f"prompt_eval_count {r.prompt_eval_count!r}")
    check(r.eval_count and r.eval_count > 0, f"eval_count {r.eval_count!r}")
    check(r.created_at and r.created_at.endswith("Z"), f"created_at {r.created_at!r}")
    return {
        "answer_model": r.model,
        "done_reason": r.done_reason,
        "usage": {"prompt_eval_count": r.prompt_eval_count, "eval_count": r.eval_count},
    }


def calls_of(message):
    calls = []
    for t in message.tool_calls or []:
        check(isinstance(t.function.arguments, dict), f"arguments are not an object: {t.function.arguments!r}")
        calls.append({"name": t.function.name, "arguments": dict(t.function.arguments)})
    return calls


def chat_report(c, r):
    check(isinstance(r, ollama.ChatResponse), f"parsed to {type(r)}")
    check(r.message.role == "assistant", f"role {r.message.role!r}")
    calls = calls_of(r.message)
    if not calls:
        check(r.message.content, f"no content and no tool call: {r.message!r}")
    return {"headers": c.headers(), "content": r.message.content, "tool_calls": calls, **end_report(r)}


def chat(c, model, prompt):
    r = c.call(
        "chat",
        model=model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt or GREETING}],
        stream=False,
        options={"temperature": 0.5, "num_predict": 256},
    )
    return chat_report(c, r)


def stream(c, model, prompt):
    parts = c.call("chat", model=model, messages=[{"role": "user", "content": prompt or GREETING}], stream=True)
    check(len(parts) > 1, f"only {len(parts)} lines")
    for p in parts[:-1]:
        check(isinstance(p, ollama.ChatResponse), f"line parsed to {type(p)}")
        check(p.done is False, f"done before the last line: {p!r}")
    content = "".join(p.message.content or "" for p in parts)
    check(content, "the stream spelled out no content")
    report = end_report(parts[-1])
    report.update(headers=c.headers(), content=content, lines=len(parts))
    return report


def generate(c, model, prompt):
    r = c.call("generate", model=model, prompt=prompt or GREETING, system=SYSTEM, stream=False)
    check(isinstance(r, ollama.GenerateResponse), f"parsed to {type(r)}")
    check(r.response, f"no response text: {r!r}")
    return {"headers": c.headers(), "content": r.response, **end_report(r)}


def generate_stream(c, model, prompt):
    parts = c.call("generate", model=model, prompt=prompt or GREETING, stream=True)
    check(len(parts) > 1, f"only {len(parts)} lines")
    check(all(p.done is False for p in parts[:-1]), "done before the last line")
    content = "".join(p.response or "" for p in parts)
    check(content, "the stream spelled out no response")
    report = end_report(parts[-1])
    report.update(headers=c.headers(), content=content, lines=len(parts))
    return report


def tools(c, model, prompt):
    """A tool call, then its result sent back by name (Ollama's tool
    messages carry `tool_name`, not a call id)."""
    question = [{"role": "user", "content": prompt or WEATHER}]
    r = c.call("chat", model=model, messages=question, tools=[WEATHER_TOOL], stream=False)
    first = chat_report(c, r)
    check_weather_call(first["tool_calls"], question)
    conversation = question + [r.message, {"role": "tool", "tool_name": "get_weather", "content": WEATHER_RESULT}]
    r = c.call("chat", model=model, messages=conversation, tools=[WEATHER_TOOL], stream=False)
    second = chat_report(c, r)
    check(second["tool_calls"] == [], f"a second call after the result: {second['tool_calls']}")
    return {"headers": first["headers"], "first": first, "second": second}


def image(c, model, prompt):
    r = c.call(
        "chat",
        model=model,
        messages=[{"role": "user", "content": prompt or IMAGE_QUESTION, "images": [PNG_1X1]}],
        stream=False,
    )
    return chat_report(c, r)


def list_models(c, model, prompt):
    r = c.call("list")
    check(isinstance(r, ollama.ListResponse), f"parsed to {type(r)}")
    names = [m.model for m in r.models]
    check(names and names[0] == "auto", f"models {names}: `auto` must come first")
    for m in r.models:
        check(m.details is not None and m.details.family, f"model without details: {m!r}")
        check(m.modified_at is not None, f"model without modified_at: {m!r}")
    return {"models": names, "families": {m.model: m.details.family for m in r.models}}


CASES = {
    "chat": chat,
    "stream": stream,
    "generate": generate,
    "generate_stream": generate_stream,
    "tools": tools,
    "image": image,
    "list": list_models,
}

if __name__ == "__main__":
    run("ollama", VERSION, CASES, client_for, (_NoStatusError, ConnectionError))
