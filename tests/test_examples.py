"""examples/: run the OpenAI-client and curl examples against a small fake server on 127.0.0.1.

The fake speaks just enough of the OpenAI chat API (GET /v1/models, POST /v1/chat/completions,
whole or as server-sent events) to check what the examples send: the model, the
chat_template_kwargs the z-lab model cards use, and streaming on the second call.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY_EXAMPLE = ROOT / "examples" / "openai_chat.py"
CURL_EXAMPLE = ROOT / "examples" / "curl_chat.sh"
MODEL = "fake/target"
ANSWER = ["def quicksort", "(xs):", " ..."]


class FakeOpenAI(BaseHTTPRequestHandler):
    requests: list[dict] = []  # replaced per server

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _json(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/") != "/v1/models":
            self.send_error(404)
            return
        self._json(
            {
                "object": "list",
                "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "test"}],
            }
        )

    def do_POST(self):
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(body)
        base = {"id": "c1", "created": 0, "model": body["model"]}
        if not body.get("stream"):
            self._json(
                dict(
                    base,
                    object="chat.completion",
                    choices=[
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "".join(ANSWER)},
                        }
                    ],
                    usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
                )
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, piece in enumerate(ANSWER):
            chunk = dict(
                base,
                object="chat.completion.chunk",
                choices=[
                    {
                        "index": 0,
                        "delta": {"content": piece},
                        "finish_reason": "stop" if i == len(ANSWER) - 1 else None,
                    }
                ],
            )
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def fake_server():
    handler = type("Handler", (FakeOpenAI,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler.requests
    finally:
        server.shutdown()
        server.server_close()


def _run(cmd: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def test_python_example_help_needs_no_openai_package():
    proc = _run([sys.executable, str(PY_EXAMPLE), "--help"])
    assert proc.returncode == 0, proc.stderr
    assert "--base-url" in proc.stdout


needs_openai = pytest.mark.skipif(
    importlib.util.find_spec("openai") is None, reason="the openai package is not installed"
)


@needs_openai
def test_python_example_whole_then_streamed(fake_server):
    base_url, requests = fake_server
    proc = _run([sys.executable, str(PY_EXAMPLE), "--base-url", base_url, "--max-tokens", "32"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("".join(ANSWER)) == 2, proc.stdout
    assert "non-streaming" in proc.stdout and "streaming" in proc.stdout
    assert len(requests) == 2
    whole, streamed = requests
    for body in requests:
        assert body["model"] == MODEL  # taken from /v1/models
        assert body["chat_template_kwargs"] == {"enable_thinking": True}
        assert body["max_tokens"] == 32 and body["temperature"] == 0.0
    assert not whole.get("stream") and streamed["stream"] is True


@needs_openai
def test_python_example_no_thinking(fake_server):
    base_url, requests = fake_server
    proc = _run(
        [
            sys.executable,
            str(PY_EXAMPLE),
            "--base-url",
            base_url,
            "--model",
            "other/name",
            "--no-thinking",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert [b["chat_template_kwargs"] for b in requests] == [{"enable_thinking": False}] * 2
    assert {b["model"] for b in requests} == {"other/name"}


needs_curl = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("bash") is None, reason="curl or bash missing"
)


@needs_curl
def test_curl_example_whole_then_streamed(fake_server):
    base_url, requests = fake_server
    env = dict(os.environ, BASE_URL=base_url, MODEL=MODEL, PROMPT='say "hi"\nand stop')
    proc = _run(["bash", str(CURL_EXAMPLE)], env=env)
    assert proc.returncode == 0, proc.stderr
    assert "data: [DONE]" in proc.stdout
    assert [b.get("stream") for b in requests] == [False, True]
    for body in requests:
        assert body["model"] == MODEL
        assert body["messages"] == [{"role": "user", "content": 'say "hi"\nand stop'}]
        assert body["chat_template_kwargs"] == {"enable_thinking": True}


def test_curl_example_is_valid_bash():
    if shutil.which("bash") is None:
        pytest.skip("bash missing")
    proc = _run(["bash", "-n", str(CURL_EXAMPLE)])
    assert proc.returncode == 0, proc.stderr
    assert os.access(CURL_EXAMPLE, os.X_OK)
