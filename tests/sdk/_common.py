"""Shared by the case scripts of the official SDKs and clients
(openai_cases.py, anthropic_cases.py, responses_cases.py, ollama_cases.py).

Each case is a real call through the official SDK against the aipipe Envoy
listener. Each prints one JSON line: what it observed (the parsed answer, the
x-aipipe-* response headers) and, given --mock-port, what the mock provider
received; or, failing, a message that says what went wrong (also on stderr,
and the exit status is 1). The checks here are
about what the SDK parsed; where the request went is checked by the Rust tests
(tests/tests/sdk.rs, tests/tests/client_protocols.rs) against the mock
provider's log.
"""

import argparse
import json
import sys
import traceback
import urllib.request

# A 1x1 red PNG: the image part of the image cases.
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
SYSTEM = "You are a helpful assistant."
GREETING = "hello! how are you today?"
WEATHER = "What's the weather in Paris right now?"
IMAGE_QUESTION = "What colour is this image?"

# The weather tool: its name, what it does and its JSON schema (each
# protocol's tool format wraps them).
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City and country"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["location", "unit"],
}
WEATHER_FUNCTION = {
    "name": "get_weather",
    "description": "Get the current weather for a location",
    "parameters": WEATHER_SCHEMA,
}
# Chat Completions (and Ollama, which takes the same tools) nest it under `function`.
CHAT_WEATHER_TOOL = {"type": "function", "function": WEATHER_FUNCTION}
WEATHER_RESULT = '{"temperature": 18, "unit": "celsius", "sky": "sunny"}'


class CaseFailed(Exception):
    """A check on what the SDK returned failed."""


def check(condition, message):
    if not condition:
        raise CaseFailed(message)


def aipipe_headers(headers):
    """The x-aipipe-* response headers (httpx headers are case-insensitive)."""
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-aipipe-")}


def check_event_stream(headers):
    ctype = headers.get("content-type", "")
    check(ctype.startswith("text/event-stream"), f"content-type {ctype!r}")


def check_weather_call(calls, question, args="arguments"):
    """The mocks answer a weather question with one get_weather call, its
    arguments (`args`) an object with a location; returns that call."""
    check(len(calls) == 1, f"want one tool call for {question!r}, got {calls}")
    call = calls[0]
    check(call["name"] == "get_weather", f"called {call['name']!r}, the only tool is get_weather")
    check(isinstance(call[args], dict), f"{args} {call[args]!r}")
    check(isinstance(call[args].get("location"), str), f"no location in {call[args]!r}")
    return call


def openai_client(openai, port, key):
    """The `openai` SDK's client of the listener: no retries (a refused
    request is reported as it is), 20 s per call."""
    return openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key=key,
        max_retries=0,
        timeout=20.0,
    )


def parse_args(sdk, cases):
    p = argparse.ArgumentParser(
        description=f"Cases of the {sdk} SDK against aipipe's Envoy listener on 127.0.0.1.",
        epilog="--batch reads a JSON list of {id, case, model, prompt?, key?} from stdin and prints "
        "one line per case: {id, ok, observed, upstream} or {id, ok: false, error}.",
    )
    p.add_argument("--port", type=int, required=True, help="the Envoy listener port on 127.0.0.1")
    p.add_argument("--key", required=True, help="the tenant's virtual key")
    p.add_argument("--mock-port", type=int, help="the mock provider's port: report what it received per case")
    p.add_argument("--prompt", help="the user's question (default: the case's own)")
    p.add_argument("--batch", action="store_true", help="run the cases listed on stdin")
    p.add_argument("case", nargs="?", choices=sorted(cases))
    p.add_argument("model", nargs="?", default="auto")
    a = p.parse_args()
    if not a.batch and not a.case:
        p.error("name a CASE, or use --batch")
    return a


def _mock(port, method):
    """The mock provider's log of received requests (GET), or clears it (DELETE)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_mock/received", method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if method == "GET" else None


def _run_one(sdk, version, cases, client, spec, api_errors):
    """Runs one case; returns (observed, None) or (None, message)."""
    label = f"{sdk} {version} SDK, case {spec['case']}, model {spec['model']!r}"
    status_error, connection_error = api_errors
    try:
        return cases[spec["case"]](client, spec["model"], spec.get("prompt")), None
    except CaseFailed as e:
        return None, f"{label}: {e}"
    except status_error as e:
        req = e.response.request
        return None, (
            f"{label}: HTTP {e.status_code} from {req.method} {req.url}\n"
            f"  response body: {e.response.text}\n"
            f"  response headers: {aipipe_headers(e.response.headers)}"
        )
    except connection_error as e:
        return None, f"{label}: connection failed: {e!r} (cause: {e.__cause__!r})"
    except Exception:  # noqa: BLE001 — an SDK that cannot parse an answer raises anything
        return None, f"{label}: the SDK raised\n{traceback.format_exc()}"


def run(sdk, version, cases, make_client, api_errors):
    """Runs the case named on the command line (or the --batch list) and
    reports each: one JSON line per case. Exits 1 if any case failed.

    `api_errors`: the SDK's (status error, connection error) classes, so a
    refused request is reported with its status and body.
    """
    a = parse_args(sdk, cases)
    if a.batch:
        specs = json.load(sys.stdin)
    else:
        specs = [{"id": a.case, "case": a.case, "model": a.model, "prompt": a.prompt}]
    failed = 0
    for spec in specs:
        if spec["case"] not in cases:
            raise SystemExit(f"unknown case {spec['case']!r}: the {sdk} cases are {sorted(cases)}")
        line = {"id": spec["id"], "sdk": sdk, "sdk_version": version, "case": spec["case"], "model": spec["model"]}
        if a.mock_port:
            _mock(a.mock_port, "DELETE")
        client = make_client(a.port, spec.get("key") or a.key)
        observed, error = _run_one(sdk, version, cases, client, spec, api_errors)
        if error is None:
            line.update(ok=True, observed=observed)
        else:
            failed += 1
            line.update(ok=False, error=error)
            print(error, file=sys.stderr)
        if a.mock_port:
            line["upstream"] = _mock(a.mock_port, "GET")
        print(json.dumps(line, sort_keys=True), flush=True)
    sys.exit(1 if failed else 0)


def require(module, version_attr="__version__"):
    """Imports an SDK or exits with what to do."""
    try:
        mod = __import__(module)
    except ImportError as e:
        print(
            f"the `{module}` Python SDK is not installed in this interpreter ({sys.executable}): {e}\n"
            "run `make integration` (or `make test`): it installs the pinned openai, anthropic "
            "and ollama clients into .venv/",
            file=sys.stderr,
        )
        sys.exit(2)
    return mod, getattr(mod, version_attr, "?")
