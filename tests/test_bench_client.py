"""The HTTP client against a real loopback server: parsing, timing and failure kinds."""

import pytest

from fake_openai_server import FakeServer
from sglang_dflash.bench.client import RequestSpec, build_body, send


@pytest.fixture(scope="module")
def server():
    with FakeServer(accept=3, slow_s=2.0) as s:
        yield s


def spec(text="alpha beta gamma", n=10, stream=True, **kw):
    return RequestSpec(text=text, messages=[{"role": "user", "content": text}], max_tokens=n,
                       stream=stream, **kw)


def test_generate_stream_gives_timing_and_acceptance(server):
    r = send(server.url, "generate", spec(n=10), timeout=5)
    assert r.ok and r.error is None
    # 10 tokens in steps of 3 -> 4 chunks, 4 verify steps, acceptance 2.5
    assert r.output_tokens == 10 and r.verify_ct == 4 and r.accept_len == pytest.approx(2.5)
    assert len(r.chunk_times) == 4 and r.chunk_times == sorted(r.chunk_times)
    assert 0 < r.ttft == r.chunk_times[0] <= r.latency
    assert r.finish_reason == "length"
    assert r.text.startswith("alpha beta gamma alpha")


def test_generate_request_body(server):
    send(server.url, "generate", spec(n=5, temperature=0.5, ignore_eos=False), timeout=5)
    body = server.requests[-1]
    assert body["sampling_params"] == {"max_new_tokens": 5, "temperature": 0.5,
                                       "ignore_eos": False}
    assert body["stream"] is True and body["text"] == "alpha beta gamma"


def test_chat_stream_counts_tokens_from_usage_but_has_no_meta(server):
    r = send(server.url, "chat", spec(n=7), timeout=5)
    assert r.ok and r.output_tokens == 7 and r.prompt_tokens == 3
    assert r.verify_ct is None and r.accept_len is None       # 0.5.17: no meta_info on streams
    assert len(r.chunk_times) == 3
    assert server.requests[-1]["stream_options"] == {"include_usage": True}


def test_chat_without_stream_returns_meta_info(server):
    r = send(server.url, "chat", spec(n=7, stream=False), timeout=5)
    assert r.ok and r.verify_ct == 3 and r.accept_len == pytest.approx(7 / 3)
    assert r.ttft is None and r.chunk_times == [] and r.latency > 0      # no stream, no TTFT
    assert server.requests[-1]["return_meta_info"] is True


def test_completions_stream(server):
    r = send(server.url, "completions", spec(n=4), timeout=5)
    assert r.ok and r.output_tokens == 4 and r.text == "alpha beta gamma alpha "


def test_extra_body_is_merged():
    body = build_body("chat", spec(extra_body={"chat_template_kwargs": {"enable_thinking": False}}))
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    with pytest.raises(ValueError, match="unknown api"):
        build_body("nope", spec())


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("marker, kind", [("[500]", "http_500"), ("[badjson]", "bad_json"),
                                          ("[error]", "server_error")])
def test_server_faults_become_error_kinds(server, marker, kind, stream):
    r = send(server.url, "generate", spec(text=f"x {marker}", stream=stream), timeout=5)
    assert not r.ok and r.error == kind and r.detail


def test_stream_cut_mid_way(server):
    r = send(server.url, "generate", spec(text="x [drop]"), timeout=5)
    assert not r.ok and r.error in ("bad_json", "truncated", "connection")


def test_timeout(server):
    r = send(server.url, "generate", spec(text="x [slow]"), timeout=0.3)
    assert not r.ok and r.error == "timeout"


@pytest.mark.parametrize("url, kind", [("http://127.0.0.1:9", "connection"),
                                       ("not a url", "bad_url"),
                                       ("http://no-such-host.invalid", "connection")])
def test_bad_urls(url, kind):
    r = send(url, "generate", spec(), timeout=2)
    assert not r.ok and r.error == kind


def test_server_timestamps_are_kept_when_the_server_sends_them():
    with FakeServer(accept=3, metrics=True) as s:
        r = send(s.url, "generate", spec(n=10), timeout=5)
    assert r.ok
    t = r.server_times
    assert set(t) == {"request_received_ts", "api_server_dispatch_finish_ts", "forward_entry_time",
                      "prefill_finished_time", "queue_time", "request_finished_ts"}
    assert t["request_received_ts"] <= t["api_server_dispatch_finish_ts"] \
        <= t["forward_entry_time"] <= t["prefill_finished_time"] <= t["request_finished_ts"]


def test_no_server_timestamps_without_metrics(server):
    r = send(server.url, "generate", spec(n=4), timeout=5)
    assert r.ok and r.server_times == {}
