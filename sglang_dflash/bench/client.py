"""One timed HTTP request to a serving endpoint, stdlib only.

Three request shapes (``api``):

* ``generate``    SGLang's native ``POST /generate``. When streaming, every SSE chunk carries
                  ``meta_info.completion_tokens`` (cumulative) and the last one also carries
                  ``spec_verify_ct`` on a speculative server, so one streamed request gives TTFT,
                  inter-token gaps and the acceptance length together.
* ``chat``        OpenAI ``POST /v1/chat/completions``. SGLang 0.5.17 returns per-choice
                  ``meta_info`` only for non-streaming requests with ``return_meta_info: true``
                  (it rejects that flag on streams), so a streamed chat request has no acceptance.
* ``completions`` OpenAI ``POST /v1/completions``; 0.5.17 returns no ``meta_info`` at all.

Nothing here raises on a bad server: every failure becomes ``RequestResult.error`` (a short
kind such as ``connection``, ``timeout``, ``http_500``, ``bad_json``, ``server_error``) plus
``detail`` with the message.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

API_PATHS = {
    "generate": "/generate",
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
}


@dataclass(frozen=True)
class RequestSpec:
    """What to send; ``text`` is used by generate/completions, ``messages`` by chat."""

    text: str
    messages: list[dict]
    max_tokens: int
    ignore_eos: bool = True
    temperature: float = 0.0
    stream: bool = True
    model: str = "default"
    extra_body: dict = field(default_factory=dict)


@dataclass
class RequestResult:
    ok: bool = False
    error: str | None = None        # failure kind, None when ok
    detail: str = ""
    ttft: float | None = None       # s from send to the first chunk with output (streams only)
    latency: float | None = None    # s from send to the end of the response
    chunk_times: list[float] = field(default_factory=list)  # s since send, chunks with new tokens
    output_tokens: int = 0
    prompt_tokens: int | None = None
    verify_ct: int | None = None    # target verify steps (speculative servers only)
    finish_reason: str | None = None
    text: str = ""
    sent_at: float | None = None    # wall-clock time (epoch s) the request was sent (set by the runner)
    # the server's own timestamps (epoch s) and queue time of this request, from meta_info when
    # SGLang runs with --enable-metrics (SERVER_TIMES keys found; empty otherwise)
    server_times: dict = field(default_factory=dict)

    @property
    def accept_len(self) -> float | None:
        """Tokens per verify step, the bonus included (z-lab / SGLang ``spec_accept_length``)."""
        if self.verify_ct:
            return self.output_tokens / self.verify_ct
        return None


class _Fail(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def build_body(api: str, spec: RequestSpec) -> dict:
    if api == "generate":
        body = {
            "text": spec.text,
            "sampling_params": {
                "max_new_tokens": spec.max_tokens,
                "temperature": spec.temperature,
                "ignore_eos": spec.ignore_eos,
            },
            "stream": spec.stream,
        }
    elif api in ("chat", "completions"):
        body = {
            "model": spec.model,
            "max_tokens": spec.max_tokens,
            "temperature": spec.temperature,
            "ignore_eos": spec.ignore_eos,   # SGLang / vLLM extension; others ignore it
            "stream": spec.stream,
        }
        if api == "chat":
            body["messages"] = spec.messages
        else:
            body["prompt"] = spec.text
        if spec.stream:
            body["stream_options"] = {"include_usage": True}
        elif api == "chat":
            body["return_meta_info"] = True
    else:
        raise ValueError(f"unknown api {api!r}; expected one of {sorted(API_PATHS)}")
    body.update(spec.extra_body)
    return body


def send(base_url: str, api: str, spec: RequestSpec, timeout: float) -> RequestResult:
    """Send one request and time it; never raises for server or network trouble."""
    res = RequestResult()
    url = base_url.rstrip("/") + API_PATHS[api]
    data = json.dumps(build_body(api, spec)).encode()
    t0 = time.perf_counter()
    deadline = t0 + timeout
    try:
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if spec.stream:
                _read_stream(resp, api, res, t0, deadline)
            else:
                _read_whole(resp, api, res, t0)
        res.latency = time.perf_counter() - t0
        res.ok = True
    except _Fail as e:
        res.error, res.detail = e.kind, e.detail
    except urllib.error.HTTPError as e:
        res.error, res.detail = f"http_{e.code}", _body_snippet(e)
    except urllib.error.URLError as e:
        kind = "timeout" if isinstance(e.reason, (socket.timeout, TimeoutError)) else "connection"
        res.error, res.detail = kind, str(e.reason)
    except TimeoutError as e:
        res.error, res.detail = "timeout", f"no data for {timeout:g} s ({e})"
    except (ConnectionError, http.client.HTTPException, OSError) as e:
        res.error, res.detail = "connection", f"{type(e).__name__}: {e}"
    except ValueError as e:                      # malformed URL
        res.error, res.detail = "bad_url", str(e)
    return res


def _body_snippet(e: urllib.error.HTTPError) -> str:
    try:
        return e.read(300).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the status code is what matters
        return str(e)


def _decode(raw: bytes | str) -> dict:
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        snippet = raw[:120] if isinstance(raw, str) else raw[:120].decode("utf-8", "replace")
        raise _Fail("bad_json", f"{e}: {snippet!r}") from None
    if not isinstance(obj, dict):
        raise _Fail("bad_json", f"expected a JSON object, got {type(obj).__name__}")
    if "error" in obj and obj["error"]:
        raise _Fail("server_error", str(obj["error"])[:300])
    return obj


def _read_whole(resp, api: str, res: RequestResult, t0: float) -> None:
    """A non-streamed reply: no TTFT or chunk times (the first token's time is unknown)."""
    _absorb(api, _decode(resp.read()), res, final=True)


def _read_stream(resp, api: str, res: RequestResult, t0: float, deadline: float) -> None:
    done = False
    for raw in resp:
        now = time.perf_counter()
        if now > deadline:
            raise _Fail("timeout", f"stream still open after {deadline - t0:g} s")
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue                         # SSE comments, blank separators, event names
        payload = line[5:].strip()
        if payload == b"[DONE]":
            done = True
            break
        if _absorb(api, _decode(payload), res, final=False):
            if res.ttft is None:
                res.ttft = now - t0
            res.chunk_times.append(now - t0)
    if not done:
        raise _Fail("truncated", f"stream closed before [DONE] after {res.output_tokens} tokens")
    if res.ttft is None:
        raise _Fail("empty", "stream ended without any output token")


def _absorb(api: str, obj: dict, res: RequestResult, final: bool) -> bool:
    """Fold one response object (or stream chunk) into ``res``; True if it carried output."""
    before = res.output_tokens
    if api == "generate":
        meta = obj.get("meta_info") or {}
        res.text = obj.get("text") or res.text
        _absorb_meta(meta, res)
        return res.output_tokens > before
    carried = False
    usage = obj.get("usage") or {}
    if usage.get("completion_tokens") is not None:
        res.output_tokens = max(res.output_tokens, int(usage["completion_tokens"]))
    if usage.get("prompt_tokens") is not None:
        res.prompt_tokens = int(usage["prompt_tokens"])
    for choice in obj.get("choices") or []:
        if api == "chat":
            part = (choice.get("delta") or choice.get("message") or {}).get("content") or ""
        else:
            part = choice.get("text") or ""
        if part:
            carried = True
            res.text += part
            if not final and not usage:
                # Streams do not say how many tokens a chunk holds; count the chunk as one
                # until the closing usage chunk gives the real total.
                res.output_tokens += 1
        if choice.get("finish_reason"):
            res.finish_reason = str(choice["finish_reason"])
        if choice.get("meta_info"):
            _absorb_meta(choice["meta_info"], res)
    return carried


# What SGLang 0.5.17 puts in meta_info under --enable-metrics: when the HTTP server received
# the request and handed it to the scheduler, when the scheduler put it into a prefill batch
# and processed that batch's result, the time it waited in the queue, and when it finished.
SERVER_TIMES = ("request_received_ts", "api_server_dispatch_finish_ts", "forward_entry_time",
                "prefill_finished_time", "queue_time", "request_finished_ts")


def _absorb_meta(meta: dict, res: RequestResult) -> None:
    for key in SERVER_TIMES:
        if isinstance(meta.get(key), (int, float)):
            res.server_times[key] = float(meta[key])
    if meta.get("completion_tokens") is not None:
        res.output_tokens = int(meta["completion_tokens"])
    if meta.get("prompt_tokens") is not None:
        res.prompt_tokens = int(meta["prompt_tokens"])
    if meta.get("spec_verify_ct"):
        res.verify_ct = int(meta["spec_verify_ct"])
    reason = meta.get("finish_reason")
    if reason:
        res.finish_reason = reason.get("type") if isinstance(reason, dict) else str(reason)
