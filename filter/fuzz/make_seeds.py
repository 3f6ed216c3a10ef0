#!/usr/bin/env python3
"""Writes the hand-made seed corpus of every fuzz target into corpus/<target>/.

Seeds: hostile bodies (deep nesting, lone surrogates, huge numbers, invalid UTF-8,
duplicate keys, escaped names), realistic SSE streams and answers (sse,
usage), tables and configurations (table), and shared-data values (cache).
`corpus/table/default-table.json` is the default RoutingTable serialised by the
filter itself and is kept as is.
Entries libFuzzer found and `-merge=1` kept (hash names) are left alone.

With --fixtures it also writes each request of tests/fixtures/routing/*.jsonl
(chat_request, route, anthropic_request): 729 files, to re-seed before a long
run. Minimise afterwards (`cargo fuzz cmin`); the committed corpus keeps only
the fixture requests that add coverage.
"""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent.parent / "tests" / "fixtures" / "routing"
CORPUS = HERE / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


USER = '"messages":[{"role":"user","content":"hi"}]'

HOSTILE = {
    "empty": b"",
    "whitespace-only": b" \t\r\n",
    "not-an-object": b"[1,2,3]",
    "bom": b"\xef\xbb\xbf{" + USER.encode() + b"}",
    "leading-space": b"  \n {" + USER.encode() + b', "model" : null }',
    "truncated": b'{"model":"auto","messages":[{"role":"user","content":"hi',
    "trailing-garbage": b"{" + USER.encode() + b"} x",
    "deep-nesting-ignored": ("{" + USER + ',"extra":' + "[" * 127 + "]" * 127 + "}").encode(),
    "deep-nesting-over-limit": ("{" + USER + ',"extra":' + "[" * 3000 + "]" * 3000 + "}").encode(),
    "deep-nesting-objects": ("{" + USER + ',"x":' + '{"a":' * 200 + "1" + "}" * 200 + "}").encode(),
    "lone-surrogate-content": b'{"messages":[{"role":"user","content":"\\ud800 hi"}]}',
    "lone-surrogate-ignored": b'{' + USER.encode() + b',"user":"\\udc00"}',
    "lone-surrogate-model": b'{"model":"\\ud83d","messages":[{"role":"user","content":"hi"}]}',
    "surrogate-pair-model": b'{"model":"gpt\\ud83d\\ude00","messages":[{"role":"user","content":"hi"}]}',
    "max-tokens-u64-max-auto": b'{"model":"auto",' + USER.encode() + b',"max_tokens":18446744073709551615}',
    "max-tokens-u64-overflow": b'{' + USER.encode() + b',"max_tokens":18446744073709551616}',
    "max-tokens-negative": b'{' + USER.encode() + b',"max_tokens":-1}',
    "max-tokens-float": b'{' + USER.encode() + b',"max_completion_tokens":1.5}',
    "huge-float-ignored": b'{' + USER.encode() + b',"temperature":1e999,"top_p":-0.0}',
    "huge-int-ignored": b'{' + USER.encode() + b',"seed":123456789012345678901234567890}',
    "invalid-utf8-content": b'{"messages":[{"role":"user","content":"caf\xe9 \xff\xfe"}]}',
    "invalid-utf8-ignored": b'{' + USER.encode() + b',"user":"\xc3\x28\xa0\xa1"}',
    "invalid-utf8-key": b'{' + USER.encode() + b',"\xff":1}',
    "duplicate-model": b'{"model":"auto","model":"gpt-4o",' + USER.encode() + b'}',
    "duplicate-messages": b'{' + USER.encode() + b',' + USER.encode() + b'}',
    "duplicate-ignored": b'{' + USER.encode() + b',"temperature":1,"temperature":2}',
    "escaped-key-model": b'{"mod\\u0065l":"gpt-4o",' + USER.encode() + b'}',
    "escaped-model-name": b'{"model":"gpt-4o\\u002dmini",' + USER.encode() + b'}',
    "escaped-auto": b'{"model":"\\u0061uto",' + USER.encode() + b'}',
    "escaped-slash-model": b'{"model":"anthropic\\/claude-sonnet-4-5",' + USER.encode() + b'}',
    "quote-in-model": b'{"model":"a\\"b\\\\c",' + USER.encode() + b'}',
    "model-number": b'{"model":7,' + USER.encode() + b'}',
    "model-object": b'{"model":{"name":"gpt-4o"},' + USER.encode() + b'}',
    "model-empty": b'{"model":"",' + USER.encode() + b'}',
    "model-last": b'{' + USER.encode() + b',"model":"claude-opus-4-5"}',
    "model-provider-prefixed": b'{"model":"openai/gpt-4o-mini",' + USER.encode() + b'}',
    "messages-empty": b'{"messages":[]}',
    "role-unknown": b'{"messages":[{"role":"wizard","content":"x"}]}',
    "content-null-tool-calls": b'{"messages":[{"role":"assistant","content":null,"tool_calls":[{},{}]},{"role":"tool","content":"ok"}]}',
    "content-parts-mixed": b'{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"},{"type":"input_audio"},{"type":"text"}]}]}',
    "content-parts-escaped": b'{"messages":[{"role":"user","content":[{"type":"te\\u0078t","text":"\\n\\t\\"x\\""}]}]}',
    "json-schema-tools": b'{' + USER.encode() + b',"tools":[{},{}],"functions":[1],"response_format":{"type":"json_schema"}}',
    "long-prompt": ('{"messages":[{"role":"user","content":"' + "Prove it. " * 800 + "```rust\\nfn f<'a>() {}\\n```" + "why? " * 200 + '"}]}').encode(),
    # Reported crashes (select.rs ContextTooLong `needed` overflow).
    "crash-max-tokens-overflow": b'{"messages":[{"role":"user","content":""}],"max_tokens":18446744073709551615}',
    "cjk-prompt": '{"messages":[{"role":"user","content":"请证明，并且；解释、为什么？\\n1. 第一\\n2. 第二"}]}'.encode(),
}


def chat_seeds(fixtures):
    n = 0
    for f in sorted(FIXTURES.glob("*.jsonl")) if fixtures else []:
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            case = json.loads(line)
            body = json.dumps(case["request"], ensure_ascii=False)
            for t in ("chat_request", "route", "anthropic_request"):
                write(t, f"fixture-{case['id']}.json", body)
            n += 1
    for name, body in HOSTILE.items():
        for t in ("chat_request", "route", "anthropic_request"):
            write(t, f"hostile-{name}.json", body)
    return n


def chunk(delta, finish=None, usage="null"):
    c = {
        "id": "chatcmpl-9x",
        "object": "chat.completion.chunk",
        "created": 1763860000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    s = json.dumps(c, separators=(",", ":"))
    return s[:-1] + ',"usage":' + usage + "}"


USAGE = '{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'


def openai_stream(eol="\n", usage=True):
    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": w}) for w in ["Hello", "!", " How", " can", " I", " help", "?"]]
    events.append(chunk({}, "stop"))
    if usage:
        final = chunk({}, None, USAGE).replace('"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":null}]', '"choices":[]')
        events.append(final)
    events.append("[DONE]")
    return "".join(f"data: {e}{eol}{eol}" for e in events)


def sse_seeds():
    # Byte 0: flags | cut count; then two bytes per cut; then the stream.
    def seed(name, stream, cuts=(), flags=0):
        head = bytes([flags | len(cuts)]) + b"".join(c.to_bytes(2, "little") for c in cuts)
        write("sse", name, head + stream.encode())

    seed("openai-usage", openai_stream())
    seed("openai-usage-cut", openai_stream(), cuts=(100, 20000, 40000, 65000))
    seed("openai-usage-crlf", openai_stream("\r\n"), cuts=(7, 30001))
    seed("openai-no-usage", openai_stream(usage=False), cuts=(12345,))
    seed("comments-fields-multiline",
         ": keep-alive\n\nevent: x\r\nid: 3\nretry: 10\ndata: two\r\ndata:lines\r\n\r\ndata\ndata:\n\ndata: end",
         cuts=(1, 2, 3, 60000))
    seed("anthropic-events",
         'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":25,"output_tokens":1}}}\n\n'
         'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n'
         'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}\n\n'
         'event: message_stop\ndata: {"type":"message_stop"}\n\n', cuts=(30000,))
    seed("huge-line", 'data: {"a":1}\n\ndata: ok\n\n', flags=0xe0 | 0x10)
    seed("huge-line-exact", "data: a\n\n\ndata: b\n\n", cuts=(8,), flags=0xe0)
    seed("no-final-newline", "data: a\ndata: b", cuts=(9,))
    seed("lone-cr", "data: a\rdata: b\r\r", cuts=(3,))


def usage_seeds():
    plain = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": json.loads(USAGE),
    }
    write("usage", "openai-completion.json", json.dumps(plain))
    write("usage", "openai-final-chunk.json", chunk({}, None, USAGE))
    write("usage", "openai-chunk-null-usage.json", chunk({"content": "x"}))
    write("usage", "moonshot-cached.json", '{"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6,"cached_tokens":2}}')
    write("usage", "spaced-usage.json", '{"usage": {"prompt_tokens":5}}')
    write("usage", "usage-null.json", '{"usage":null}')
    write("usage", "usage-float.json", '{"usage":{"prompt_tokens":1e3,"completion_tokens":1}}')
    write("usage", "usage-huge.json", '{"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":18446744073709551615,"prompt_tokens_details":{"cached_tokens":18446744073709551615}}}')
    write("usage", "usage-negative.json", '{"usage":{"prompt_tokens":-1}}')
    write("usage", "done.txt", "[DONE]")
    # Reported crash: cost_nusd overflows on huge provider-reported usage.
    write("usage", "crash-cost-overflow.json", '{"usage":{"prompt_tokens":18446744073709551615}}')
    write("usage", "invalid-utf8.json", b'{"usage":{"prompt_tokens":1},"x":"\xff"}')


def table_seeds():
    hand = {
        "version": 2,
        "providers": [
            {"id": "p", "cluster": "c", "authority": "a.example", "chat_path": "/v1/chat/completions", "auth": "bearer"},
            {"id": "q", "cluster": "d", "authority": "b.example", "chat_path": "/v1/messages", "auth": "x_api_key"},
        ],
        "models": [
            {"id": "m1", "provider": "p", "input_per_mtok": 0.1, "output_per_mtok": 0.4, "quality": 0.5,
             "context_window": 1000, "max_output_tokens": 100},
            {"id": "m2", "provider": "q", "upstream_id": "m2-2025", "input_per_mtok": 3, "output_per_mtok": 15,
             "cached_input_per_mtok": 0.3, "quality": 1, "context_window": 200000, "max_output_tokens": 8192,
             "capabilities": {"tools": True, "vision": True, "json_schema": True}, "enabled": True,
             "latency_ms": 250.5, "penalty": 0.5},
        ],
        "tenants": [
            {"id": "t", "virtual_key_hashes": ["0" * 64], "provider_keys": {"p": "k1", "q": "k2"}},
            {"id": "u", "disabled": True, "provider_keys": {"p": ""}},
        ],
        "scoring": {"base": 0.2, "length": {"weight": 0.2, "min_tokens": 50, "full_tokens": 4000},
                    "keywords": {"hard": {"prove": 0.3, "summari*": -0.1, "证明": 0.3}, "easy": {"hi": 0.1},
                                 "head_bytes": 16, "tail_bytes": 16, "sample_bytes": 8, "history_turns": 2},
                    "structure": {"constraints": {"must": 0.05}}},
        "selection": {"expected_output_tokens": 400, "quality_exponent": 6, "complexity_knee": 0.25},
    }
    write("table", "hand-table.json", json.dumps(hand))
    write("table", "tenants-only.json", '{"tenants":[{"id":"a","provider_keys":{"openai":"sk"}}]}')
    write("table", "empty-object.json", "{}")
    write("table", "bad-quality.json", '{"models":[{"id":"m","provider":"openai","input_per_mtok":1,"output_per_mtok":1,"quality":0,"context_window":1,"max_output_tokens":1}]}')
    write("table", "bad-hash.json", '{"tenants":[{"id":"a","virtual_key_hashes":["zz"]}]}')
    write("table", "huge-windows.json", '{"tenants":[{"id":"a","provider_keys":{"openai":"sk"}}],"scoring":{"keywords":{"head_bytes":18446744073709551615,"tail_bytes":18446744073709551615,"sample_bytes":1}}}')
    # Was a crash (score::windows overflow), fixed in 4941a27.
    write("table", "crash-windows-overflow.json", '{"scoring":{"keywords":{"head_bytes":18446744073709551615}}}')
    write("table", "zero-windows.json", '{"tenants":[{"id":"a","provider_keys":{"openai":"sk"}}],"scoring":{"keywords":{"head_bytes":0,"tail_bytes":0,"sample_bytes":0,"history_turns":18446744073709551615}}}')
    write("table", "huge-weights.json", '{"tenants":[{"id":"a","provider_keys":{"openai":"sk"}}],"scoring":{"base":1e308,"length":{"weight":1e308,"min_tokens":0,"full_tokens":0},"depth":{"max_tools":4294967295,"tool":1e308}},"selection":{"expected_output_tokens":18446744073709551615,"quality_exponent":1e308}}')
    write("table", "empty-pattern.json", '{"scoring":{"keywords":{"hard":{"*":1}}}}')
    write("table", "config-empty.json", "")
    write("table", "config-full.json", json.dumps({"cluster_header": "x-aipipe-cluster", "max_body_bytes": 1048576,
                                                   "trust_tenant_header": True, "table": hand}))
    write("table", "config-bad-header.json", '{"cluster_header":"X Bad","max_body_bytes":0}')
    write("table", "singleton.json", '{"control_plane":{"cluster":"cp","authority":"cp.local","token":"t","poll_ms":1000,"timeout_ms":2000,"max_buffered_records":10,"batch_records":5}}')
    write("table", "singleton-bad.json", '{"control_plane":{"cluster":"","token":"t","poll_ms":5}}')


ANTHROPIC_MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Hello! "},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_02", "name": "aipipe_json_response", "input": {"answer": 42}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 25, "output_tokens": 15, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 7},
}


def anthropic_event(kind, body):
    return f"event: {kind}\ndata: {json.dumps(dict(type=kind, **body))}\n\n"


def anthropic_stream():
    return "".join([
        anthropic_event("message_start", {"message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                                                       "model": "claude-sonnet-4-5", "stop_reason": None,
                                                       "usage": {"input_tokens": 25, "output_tokens": 1,
                                                                 "cache_read_input_tokens": 4}}}),
        anthropic_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        anthropic_event("ping", {}),
        anthropic_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        anthropic_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "!"}}),
        anthropic_event("content_block_stop", {"index": 0}),
        anthropic_event("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                                              "name": "get_weather", "input": {}}}),
        anthropic_event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
        anthropic_event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        anthropic_event("content_block_stop", {"index": 1}),
        anthropic_event("message_delta", {"delta": {"stop_reason": "tool_use", "stop_sequence": None},
                                          "usage": {"output_tokens": 15}}),
        anthropic_event("message_stop", {}),
    ])


def anthropic_seeds():
    messages_request = {
        "model": "claude-sonnet-4-5", "max_tokens": 1024, "system": [{"type": "text", "text": "Be brief.",
                                                                       "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": [{"type": "text", "text": "Let me check."},
                                              {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                      "data": "iVBORw0KGgo="}}]},
        ],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"], "temperature": 0.5, "stream": True, "metadata": {"user_id": "u1"},
    }
    write("anthropic_request", "messages-request.json", json.dumps(messages_request))
    write("anthropic_request", "messages-request-minimal.json",
          '{"model":"x","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}')
    write("anthropic_request", "chat-request-full.json", json.dumps({
        "model": "auto", "max_tokens": 100, "stream": True, "stream_options": {"include_usage": True},
        "stop": ["x", "y"], "top_k": 5, "n": 1, "temperature": 1,
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "messages": [{"role": "system", "content": "s"}, {"role": "developer", "content": [{"type": "text", "text": "d"}]},
                     {"role": "user", "content": [{"type": "text", "text": "t"},
                                                  {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                                                  {"type": "file", "file": {"file_data": "data:application/pdf;base64,AAAA"}}]},
                     {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function",
                                                                           "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                     {"role": "tool", "tool_call_id": "c", "content": "r"}]}))

    def resp(name, status, body):
        write("anthropic_response", name, status.to_bytes(2, "little") + (body.encode() if isinstance(body, str) else body))

    resp("anthropic-message", 200, json.dumps(ANTHROPIC_MESSAGE))
    resp("anthropic-error-overloaded", 529, '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
    resp("anthropic-error-rate", 429, '{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}')
    resp("openai-completion", 200, json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            "finish_reason": "tool_calls"}], "usage": json.loads(USAGE)}))
    resp("openai-error", 400, '{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}')
    resp("not-json", 502, b"<html>502 Bad Gateway</html>\xff")

    def stream(name, text, cuts=(), flags=0):
        head = bytes([flags | len(cuts)]) + b"".join(c.to_bytes(2, "little") for c in cuts)
        write("anthropic_stream", name, head + text.encode())

    stream("anthropic-events", anthropic_stream(), cuts=(5000, 33000), flags=0x10)
    stream("anthropic-events-no-usage", anthropic_stream(), cuts=(60000,))
    stream("anthropic-error", anthropic_event("message_start", {"message": {"id": "m", "usage": {"input_tokens": 1}}})
           + anthropic_event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}), flags=0x10)
    stream("anthropic-truncated", anthropic_stream()[:700], cuts=(100,))
    stream("openai-chunks", openai_stream(), cuts=(20000, 40000))
    stream("openai-tool-chunks", "".join(f"data: {e}\n\n" for e in [
        chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                                    "function": {"name": "f", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "g", "arguments": "1}"}}]}),
        chunk({}, "tool_calls"), '{"error":{"message":"boom","type":"server_error"}}', "[DONE]"]))


def cache_seeds():
    # Shared-data values as another VM writes them (layouts in cache.rs and
    # penalty.rs), plus request bodies and Cache-Control values.
    import hashlib
    import struct

    def entry(tenant, body, stored=1_000, expires=301_000, status=200, ctype="application/json", key=None):
        key = key or hashlib.sha256(body).digest()
        t = tenant if isinstance(tenant, bytes) else tenant.encode()
        c = ctype.encode()
        return (b"aipc" + bytes([1, 0]) + struct.pack("<HQQ", status, stored, expires) + key
                + struct.pack("<HHI", len(t), len(c), len(body)) + t + c + body)

    answer = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"},
                                      "finish_reason": "stop"}]}).encode()
    write("cache", "entry", entry("tenant-a", answer))
    write("cache", "entry-expired-at-0", entry("", b"", stored=0, expires=0))
    write("cache", "entry-truncated", entry("tenant-a", answer)[:-3])
    write("cache", "entry-bad-utf8-tenant", entry(b"\xff", b"{}"))

    def penalties(epoch, models):
        out = b"aipn" + bytes([1]) + struct.pack("<QH", epoch, len(models))
        for mid, p, ok, bad, at in models:
            m = mid.encode()
            out += struct.pack("<H", len(m)) + m + struct.pack("<dQQQ", p, ok, bad, at)
        return out

    write("cache", "penalties", penalties(3, [("gpt-4o", 63.0, 10, 3, 30_000), ("claude-sonnet-4-5", 0.0, 7, 0, 0)]))
    write("cache", "penalties-max", penalties(2**64 - 1, [("m", 1e6, 2**64 - 1, 2**64 - 1, 2**64 - 1)]))
    write("cache", "penalties-empty", penalties(0, []))
    write("cache", "request-greedy.json", '{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":0,'
                                          '"response_format":{"type":"json_object"},"max_tokens":50,"n":1,"stream":false}')
    write("cache", "request-seeded.json", '{"messages":[{"role":"user","content":"hi"}],"seed":1.5e3,"temperature":0.7}')
    write("cache", "cache-control", "max-age=0, No-Cache=\"x\" ,no-store")


if __name__ == "__main__":
    n = chat_seeds("--fixtures" in sys.argv[1:])
    sse_seeds()
    usage_seeds()
    table_seeds()
    anthropic_seeds()
    cache_seeds()
    print(f"{n} fixture requests, {len(HOSTILE)} hostile bodies")
