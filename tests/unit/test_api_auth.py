"""Auth, roles, limits and the token API through the real ASGI app."""

import pytest


def test_health_needs_no_token(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    from opsloop import __version__

    assert r.json() == {"status": "ok", "version": __version__}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/metrics/query?name=x"),
        ("GET", "/api/v1/metrics/names"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/abc"),
    ],
)
def test_every_v1_route_needs_a_token(client, method, path):
    r = client.request(method, path)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_every_v1_route_in_openapi_is_protected(client):
    """No /api/v1 route may be added without an auth dependency."""
    spec = client.get("/api/openapi.json").json()
    for path, ops in spec["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for method in ops:
            url = path.replace("{token_id}", "x")
            assert client.request(method.upper(), url).status_code == 401, (method, path)


def test_bad_credentials(client, make_token):
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401
    token = make_token("viewer")
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["role"] == "viewer"


def test_roles_are_ordered(client, make_token):
    viewer, operator, admin = make_token("viewer"), make_token("operator"), make_token("admin")
    for token, code in [(viewer, 403), (operator, 403), (admin, 200)]:
        r = client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == code
    r = client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {viewer}"})
    assert "admin" in r.json()["detail"]


def test_token_api_create_and_revoke_with_audit(client, make_token, platform):
    admin = {"Authorization": f"Bearer {make_token('admin', 'boss')}"}
    r = client.post("/api/v1/tokens", json={"name": "grafana", "role": "viewer"}, headers=admin)
    assert r.status_code == 201
    new = r.json()
    assert new["token"].startswith("opl_")
    listed = client.get("/api/v1/tokens", headers=admin).json()
    assert all("token" not in t and "secret_hash" not in t for t in listed)
    r = client.delete(f"/api/v1/tokens/{new['id']}", headers=admin)
    assert r.status_code == 204
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {new['token']}"}).status_code
        == 401
    )
    actions = [(e.actor, e.action) for e in platform.audit.list()]
    assert ("token:boss", "token.create") in actions and ("token:boss", "token.revoke") in actions


def test_unknown_fields_are_refused(client, make_token):
    admin = {"Authorization": f"Bearer {make_token()}"}
    r = client.post("/api/v1/tokens", json={"name": "x", "role": "viewer", "rol": 1}, headers=admin)
    assert r.status_code == 422
    r = client.post("/api/v1/tokens", json={"name": "x", "role": "root"}, headers=admin)
    assert r.status_code == 422


def test_oversized_body_is_413_before_reading(client, make_token, platform):
    admin = {"Authorization": f"Bearer {make_token()}"}
    limit = platform.settings.max_body_bytes
    r = client.post(
        "/api/v1/tokens",
        content=b"x" * (limit + 1),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert r.status_code == 413

    def chunks():
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    r = client.post("/api/v1/tokens", content=chunks(), headers=admin)
    assert r.status_code == 413


def test_metrics_query(client, make_token, platform):
    import time

    from opsloop.store.telemetry import MetricSample

    now = time.time()
    platform.telemetry.append_metrics(
        [
            MetricSample("host_cpu_percent", float(i), now - 50 + i * 10, {"host": "h"})
            for i in range(5)
        ]
    )
    auth = {"Authorization": f"Bearer {make_token('viewer')}"}
    r = client.get("/api/v1/metrics/query?name=host_cpu_percent&since=5m&step=10s", headers=auth)
    assert r.status_code == 200
    body = r.json()
    assert body["series"][0]["labels"] == {"host": "h"}
    assert [p[1] for p in body["series"][0]["points"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert client.get("/api/v1/metrics/names", headers=auth).json() == ["host_cpu_percent"]
    for bad in [
        "since=yesterday",
        "step=0",
        "step=1s&since=30d",
        "label=novalue",
        "since=1h&until=2h",
    ]:
        r = client.get(f"/api/v1/metrics/query?name=x&{bad}", headers=auth)
        assert r.status_code == 400, bad


def test_dashboard_login_sets_http_only_cookie(client, make_token):
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    r = client.post("/login", data={"token": "wrong"}, follow_redirects=False)
    assert r.status_code == 401
    token = make_token("viewer", "alice")
    r = client.post("/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert token not in cookie
    page = client.get("/")
    assert page.status_code == 200 and "alice" in page.text
    assert "Content-Security-Policy" in page.headers
    # the cookie also authenticates the API used by the dashboard's charts
    assert client.get("/api/v1/me").json()["name"] == "alice"
    client.post("/logout")
    assert client.get("/api/v1/me").status_code == 401


def test_cookie_cannot_be_used_cross_origin(client, make_token):
    client.post("/login", data={"token": make_token("admin")})
    r = client.post(
        "/api/v1/tokens",
        json={"name": "x", "role": "viewer"},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403


def test_revoked_token_ends_its_sessions(client, make_token, platform):
    token = make_token("viewer")
    client.post("/login", data={"token": token})
    assert client.get("/api/v1/me").status_code == 200
    platform.tokens.revoke(token.split("_")[1])
    assert client.get("/api/v1/me").status_code == 401


def test_forged_cookie_is_refused(client, make_token, platform):
    token = make_token("admin")
    token_id = token.split("_")[1]
    client.cookies.set("opsloop_session", f"{token_id}.9999999999.forged")
    assert client.get("/api/v1/me").status_code == 401


def test_api_docs_are_served_without_a_cdn(client):
    r = client.get("/api/docs")
    assert r.status_code == 200
    assert "/static/vendor/swagger/swagger-ui-bundle.js" in r.text
    assert "cdn" not in r.text.lower()
    assert client.get("/static/vendor/swagger/swagger-ui-bundle.js").status_code == 200
