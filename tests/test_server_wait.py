"""The test harness's ``Server.wait_ready``: a server that came up is found even when a suite
asks for it after its start deadline (servers launched side by side, tests taking turns)."""
import http.server
import subprocess
import sys
import threading
import time

import pytest

from cpu_sglang.server import Server


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def launched_long_ago(tmp_path, port: int, timeout_s: float) -> Server:
    """A Server whose process runs and whose deadline passed a while ago."""
    s = Server("model", [], str(tmp_path / "server.log"), timeout_s=timeout_s)
    (tmp_path / "server.log").write_text("log line\n")
    s._log = open(s.log_path, "a")
    s.port = port
    s.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              start_new_session=True)
    s._launched_at = time.time() - 10 * timeout_s
    return s


def test_ready_server_found_after_its_deadline(tmp_path, health_server):
    s = launched_long_ago(tmp_path, health_server.server_address[1], timeout_s=5)
    try:
        assert s.wait_ready() is s
    finally:
        s.stop()


def test_unhealthy_server_past_its_deadline_fails_at_once(tmp_path, health_server, monkeypatch):
    monkeypatch.setattr(_Health, "status", 503)
    s = launched_long_ago(tmp_path, health_server.server_address[1], timeout_s=5)
    t0 = time.time()
    with pytest.raises(TimeoutError, match="not healthy after 5"):
        s.wait_ready()
    assert time.time() - t0 < 5  # one look, no fresh wait
    assert s.proc is None  # stopped
