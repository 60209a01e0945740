"""End-to-end log ingest: HTTP with kill -9, files and syslog configured in opsloop.toml."""

import signal
import socket

import httpx
import pytest
from tests.conftest import free_port, start_server, wait_for

pytestmark = pytest.mark.e2e


def test_acknowledged_lines_survive_kill_9(tmp_path):
    home = tmp_path / "home"
    srv = start_server(home, tmp_path)
    h = {"Authorization": f"Bearer {srv.admin_token}", "Content-Type": "text/plain"}
    acked = 0
    for batch in range(20):
        lines = [f"order {batch * 100 + i} shipped to warehouse {i % 7}" for i in range(100)]
        r = httpx.post(srv.url + "/api/v1/logs", content="\n".join(lines), headers=h)
        assert r.status_code == 200
        acked += r.json()["accepted"]
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)

    again = start_server(home, tmp_path)
    try:
        h2 = {"Authorization": f"Bearer {again.admin_token}"}
        templates = httpx.get(again.url + "/api/v1/log-templates", headers=h2).json()["templates"]
        assert sum(t["count"] for t in templates) == acked == 2000
        shipped = [t for t in templates if t["template"].startswith("order")]
        assert len(shipped) == 1
        # after the restart the same kind of line still maps to the same template
        r = httpx.post(
            again.url + "/api/v1/logs", content="order 99999 shipped to warehouse 3",
            headers={**h2, "Content-Type": "text/plain"},
        )  # fmt: skip
        assert r.json()["new_templates"] == []
    finally:
        again.stop()


def test_file_and_syslog_sources_from_config(tmp_path):
    (tmp_path / "logs").mkdir()
    applog = tmp_path / "logs" / "app.log"
    applog.write_text("")
    udp, tcp = free_port(), free_port()
    (tmp_path / "opsloop.toml").write_text(
        f'[logs]\nfiles = ["{tmp_path}/logs/*.log"]\nfrom_beginning = true\n'
        f"syslog_udp_port = {udp}\nsyslog_tcp_port = {tcp}\nsnapshot_interval_s = 1\n"
    )
    srv = start_server(tmp_path / "home", tmp_path)
    h = {"Authorization": f"Bearer {srv.admin_token}"}
    try:
        with applog.open("a") as f:
            f.write("2026-11-28T10:00:00Z ERROR payment 17 failed: card declined\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(
                b"<11>Nov 28 10:00:01 db1 postgres[77]: checkpoint took 812 ms", ("127.0.0.1", udp)
            )
        with socket.create_connection(("127.0.0.1", tcp)) as s:
            msg = b"<14>1 2026-11-28T10:00:02Z web1 nginx 5 - - upstream timed out"
            s.sendall(str(len(msg)).encode() + b" " + msg)

        def lines():
            got = httpx.get(srv.url + "/api/v1/logs", headers=h).json()["lines"]
            return got if len(got) >= 3 else None

        found = wait_for(lines)
        got = {x["source"]: x for x in found}
        assert len(found) == 3, found
        assert got[str(applog)]["level"] == "error"
        assert got["syslog:udp"]["host"] == "db1"
        assert got["syslog:udp"]["message"].endswith("checkpoint took 812 ms")
        assert got["syslog:tcp"]["message"] == "upstream timed out"
    finally:
        assert srv.stop() == 0
    assert (tmp_path / "home" / "log_state.json").exists()
    assert (tmp_path / "home" / "log_positions.json").exists()
