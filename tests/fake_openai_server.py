"""A small fake of an SGLang server for the bench / eval tests (real HTTP on 127.0.0.1).

Endpoints: ``/health``, ``/v1/models``, ``/generate``, ``/v1/chat/completions`` and
``/v1/completions``, streaming (SSE) and not. Every "decode step" emits ``accept`` tokens
(the last step fewer), so a request of ``n`` tokens reports ``spec_verify_ct = ceil(n / accept)``
and the expected acceptance length is ``n / ceil(n / accept)``.

Faults are chosen by a marker in the prompt text:
``[500]`` HTTP 500, ``[slow]`` sleeps ``slow_s`` before answering, ``[badjson]`` malformed JSON,
``[error]`` an ``{"error": ...}`` object, ``[drop]`` closes the connection mid-stream.

``metrics=True`` adds the per-request timestamps SGLang returns under ``--enable-metrics``
(receipt, hand-off, prefill batch entry and its processed result, epoch seconds) to the
``/generate`` meta_info, in order and before the first token leaves.

Run alone (``python tests/fake_openai_server.py PORT``) it serves until killed; the launch test
uses that as a stand-in for ``sglang.launch_server``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeServer:
    def __init__(self, accept: int = 3, step_s: float = 0.002, slow_s: float = 3.0, port: int = 0,
                 metrics: bool = False):
        self.accept, self.step_s, self.slow_s = accept, step_s, slow_s
        self.metrics = metrics
        self.requests: list[dict] = []
        handler = type("Handler", (_Handler,), {"fake": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def prompt_text(api: str, body: dict) -> str:
    if api == "chat":
        return " ".join(m["content"] for m in body.get("messages", []))
    return body.get("text") or body.get("prompt") or ""


def reply_tokens(text: str) -> list[str]:
    """Deterministic 'tokens' derived from the prompt: word i of an endless echo."""
    words = text.split() or ["x"]
    return [f"{words[i % len(words)]} " for i in range(10_000)]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:    # keep pytest output clean
        pass

    # -- plumbing --------------------------------------------------------------------------
    def _json(self, code: int, obj: object) -> None:
        data = json.dumps(obj).encode()
        self._raw(code, data, "application/json")

    def _raw(self, code: int, data: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse_start(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, payload: object | bytes) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.wfile.write(b"data: " + data + b"\n\n")
        self.wfile.flush()

    def _scheduled(self) -> None:
        """The server-side stamps of a request whose first token is about to leave."""
        t = self._times["request_received_ts"]
        now = time.time()
        self._times.update(api_server_dispatch_finish_ts=t + (now - t) * 0.1,
                           forward_entry_time=t + (now - t) * 0.3,
                           prefill_finished_time=now, queue_time=(now - t) * 0.1)

    # -- routes ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        if self.path == "/health":
            self._raw(200, b"", "text/plain")
        elif self.path == "/server_info":
            args = {"attention_backend": "fa3", "tp_size": 1, "speculative_algorithm": "DFLASH",
                    "speculative_num_draft_tokens": 16}
            self._json(200, {"version": "0.5.17", "server_args": args,
                             "internal_states": [{"avg_spec_accept_length": 2.5}]})
        elif self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        api = {"/generate": "generate", "/v1/chat/completions": "chat",
               "/v1/completions": "completions"}.get(self.path)
        if api is None:
            return self._json(404, {"error": "not found"})
        self.fake.requests.append({"api": api, "_arrived": time.monotonic(), **body})
        self._times = {"request_received_ts": time.time()} if self.fake.metrics else {}
        text = prompt_text(api, body)
        if "[slow]" in text:
            time.sleep(self.fake.slow_s)
        if "[500]" in text:
            return self._json(500, {"error": "boom"})
        if api == "generate":
            n = body["sampling_params"]["max_new_tokens"]
        else:
            n = body["max_tokens"]
        toks = reply_tokens(text)[:n]
        steps = [toks[i : i + self.fake.accept] for i in range(0, n, self.fake.accept)]
        if not body.get("stream"):
            return self._whole(api, text, toks, len(steps), body)
        self._sse_start()
        done = 0
        for k, step in enumerate(steps):
            time.sleep(self.fake.step_s)
            if self._times and k == 0:
                self._scheduled()
            if "[badjson]" in text and k == 1:
                self._sse(b"{not json")
                return
            if "[error]" in text and k == 1:
                self._sse({"error": {"message": "out of memory", "code": 500}})
                break
            if "[drop]" in text and k == 1:
                self.wfile.write(b"data: {\"text\": \"trunc")
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            done += len(step)
            last = k == len(steps) - 1
            self._sse(self._chunk(api, step, toks[:done], k + 1, last, n))
        if api != "generate" and body.get("stream_options", {}).get("include_usage"):
            self._sse({"choices": [], "usage": {"prompt_tokens": len(text.split()),
                                                 "completion_tokens": n}})
        self._sse(b"[DONE]")

    def _meta(self, done: int, steps: int, last: bool, text: str) -> dict:
        meta = {"id": "r", "prompt_tokens": len(text.split()), "completion_tokens": done,
                "finish_reason": {"type": "length", "length": done} if last else None}
        meta.update(self._times)
        if last and self._times:
            meta["request_finished_ts"] = time.time()
        if last:
            meta["spec_verify_ct"] = steps
            meta["spec_accept_length"] = done / steps
        return meta

    def _chunk(self, api, step, so_far, steps, last, n) -> dict:
        if api == "generate":
            return {"text": "".join(so_far), "output_ids": [len(so_far)],
                    "meta_info": self._meta(len(so_far), steps, last, "")}
        part = "".join(step)
        choice = {"index": 0, "finish_reason": "length" if last else None}
        if api == "chat":
            choice["delta"] = {"content": part}
        else:
            choice["text"] = part
        return {"id": "c", "object": "chunk", "choices": [choice]}

    def _whole(self, api, text, toks, steps, body) -> None:
        if self._times:
            self._scheduled()
        if "[badjson]" in text:
            return self._raw(200, b"{\"choices\": [", "application/json")
        if "[error]" in text:
            return self._json(200, {"error": {"message": "bad request"}})
        meta = self._meta(len(toks), steps, True, text)
        out = "".join(toks)
        if api == "generate":
            return self._json(200, {"text": out, "output_ids": [], "meta_info": meta})
        choice = {"index": 0, "finish_reason": "length"}
        if api == "chat":
            choice["message"] = {"role": "assistant", "content": out}
            if body.get("return_meta_info"):
                choice["meta_info"] = meta
        else:
            choice["text"] = out
        usage = {"prompt_tokens": len(text.split()), "completion_tokens": len(toks)}
        self._json(200, {"id": "c", "choices": [choice], "usage": usage})


if __name__ == "__main__":
    server = FakeServer(port=int(sys.argv[1]))
    server.httpd.serve_forever()
