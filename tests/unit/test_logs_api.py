"""Log ingest over HTTP, search, templates and anomalies through the real ASGI app."""

import json


def auth(make_token, role="operator"):
    return {"Authorization": f"Bearer {make_token(role)}"}


def post_text(client, headers, lines, **params):
    body = "\n".join(lines).encode("utf-8") if isinstance(lines, list) else lines
    return client.post(
        "/api/v1/logs", content=body, params=params,
        headers={**headers, "Content-Type": "text/plain"},
    )  # fmt: skip


def test_plain_lines_are_mined_and_searchable(client, make_token):
    h = auth(make_token)
    lines = [f"Connection from 10.0.0.{i} closed after {i * 7} ms" for i in range(50)]
    lines += ["", "   ", "Disk /dev/sda1 is full"]
    r = post_text(client, h, lines, source="web-1")
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 51 and body["rejected"] == []
    assert body["last_seq"] - body["first_seq"] == 50
    assert len(body["new_templates"]) == 2

    templates = client.get("/api/v1/log-templates", headers=h).json()["templates"]
    top = templates[0]
    assert top["template"] == "Connection from <*> closed after <*> ms"
    assert top["count"] == 50 and len(top["examples"]) == 3
    assert top["new"] is True

    found = client.get("/api/v1/logs", params={"q": "disk"}, headers=h).json()["lines"]
    assert [x["message"] for x in found] == ["Disk /dev/sda1 is full"]
    assert found[0]["source"] == "web-1"

    by_template = client.get(
        "/api/v1/logs", params={"template_id": top["id"], "limit": 10}, headers=h
    ).json()
    assert len(by_template["lines"]) == 10
    assert all(x["template_id"] == top["id"] for x in by_template["lines"])
    assert by_template["lines"][0]["params"] == ["10.0.0.49", "343"]
    page2 = client.get(
        "/api/v1/logs",
        params={
            "template_id": top["id"],
            "limit": 10,
            "before_seq": by_template["next_before_seq"],
        },
        headers=h,
    ).json()
    assert page2["lines"][0]["seq"] < by_template["lines"][-1]["seq"]

    detail = client.get(f"/api/v1/log-templates/{top['id']}", headers=h).json()
    assert sum(n for _, n in detail["counts"]) == 50
    assert client.get("/api/v1/log-templates/99999", headers=h).status_code == 404


def test_ndjson_with_bad_lines_keeps_the_good_ones(client, make_token):
    h = auth(make_token)
    body = "\n".join(
        [
            json.dumps({"message": "user 42 logged in", "level": "INFO", "user": 42,
                        "timestamp": "2026-01-02T03:04:05Z", "host": "web-2"}),
            "{not json",
            json.dumps({"msg": "no message key"}),
            json.dumps({"message": "x", "timestamp": {"bad": 1}}),
            json.dumps(["not", "an", "object"]),
            json.dumps({"message": "user 7 logged in", "timestamp": 1767322000}),
        ]
    )  # fmt: skip
    r = client.post(
        "/api/v1/logs", content=body, headers={**h, "Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 200
    out = r.json()
    assert out["accepted"] == 2
    assert [x["line"] for x in out["rejected"]] == [2, 3, 4, 5]
    assert "message" in out["rejected"][1]["reason"]
    lines = client.get("/api/v1/logs", params={"level": "info"}, headers=h).json()["lines"]
    assert len(lines) == 1 and lines[0]["host"] == "web-2" and lines[0]["fields"] == {"user": 42}
    assert lines[0]["ts"] == 1767323045.0


def test_invalid_utf8_and_long_lines_are_kept(client, make_token):
    h = auth(make_token)
    body = b"caf\xe9 ok\n" + b"A" * 200_000 + b"\n"
    r = client.post("/api/v1/logs", content=body, headers={**h, "Content-Type": "text/plain"})
    assert r.json()["accepted"] == 2
    lines = client.get("/api/v1/logs", headers=h).json()["lines"]
    messages = {x["message"][:5] for x in lines}
    assert "caf\ufffd " in messages
    long = next(x["message"] for x in lines if x["message"].startswith("AAA"))
    assert long.endswith("[truncated]") and len(long) < 70_000


def test_log_routes_need_the_right_role(client, make_token):
    viewer = auth(make_token, "viewer")
    assert post_text(client, viewer, ["x"]).status_code == 403
    assert post_text(client, {}, ["x"]).status_code == 401
    assert client.get("/api/v1/logs", headers=viewer).status_code == 200
    r = client.post(
        "/api/v1/logs", content=b"x", headers={**auth(make_token), "Content-Type": "image/png"}
    )
    assert r.status_code == 415


def test_new_templates_become_anomaly_records(client, make_token):
    h = auth(make_token)
    post_text(client, h, [f"heartbeat ok seq={i}" for i in range(30)])
    post_text(client, h, ["kernel: Out of memory: Killed process 4242 (java)"])
    anomalies = client.get("/api/v1/anomalies", headers=h).json()["anomalies"]
    kinds = [(a["source"], a["kind"]) for a in anomalies]
    assert ("logs.novelty", "new_template") in kinds
    newest = anomalies[0]
    assert "Out of memory" in " ".join(newest["evidence"])


def test_template_ids_survive_restart_and_replay(settings, make_token, platform):
    """Lines stored after the last snapshot are replayed so ids stay the same."""
    from opsloop.observe.record import RawLine
    from opsloop.platform import Platform

    logs = platform.logs
    first = logs.ingest([RawLine("job 1 finished in 3 s", "t", 1.0)])
    logs.snapshot()
    logs.ingest([RawLine("cache miss for key abc", "t", 2.0)])  # not in the snapshot
    ids_before = dict(logs.templates())
    platform.close()
    again = Platform.open(settings)
    try:
        assert again.logs.templates() == ids_before
        r = again.logs.ingest([RawLine("cache miss for key abc", "t", 3.0)])
        assert r.new_templates == []
        assert again.logs.templates() == ids_before
        assert first.new_templates[0] in again.logs.templates()
    finally:
        again.close()
