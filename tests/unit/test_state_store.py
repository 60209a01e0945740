"""State store tests, run on SQLite and (with OPSLOOP_TEST_POSTGRES_URL) on PostgreSQL."""

import sqlalchemy as sa

from opsloop.roles import Role
from opsloop.store.state import AuditLog, TokenService, open_state


def test_migrations_create_the_schema_and_are_idempotent(state_url):
    db = open_state(state_url)
    db.close()
    db = open_state(state_url)  # second upgrade is a no-op
    tables = set(sa.inspect(db.engine).get_table_names())
    assert {
        "api_tokens",
        "audit_events",
        "alembic_version",
        "incidents",
        "silences",
        "feedback",
    } <= tables
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0006"
    db.close()


def test_token_lifecycle(state_url):
    db = open_state(state_url)
    tokens = TokenService(db)
    plaintext, info = tokens.create("ci-bot", "operator")
    assert plaintext.startswith(f"opl_{info.id}_")
    principal = tokens.verify(plaintext)
    assert principal is not None and principal.role is Role.operator
    assert principal.name == "ci-bot"
    # only the hash is stored
    with db.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT secret_hash FROM api_tokens")).scalar()
    assert plaintext.split("_", 2)[2] not in stored
    # wrong secret, malformed, empty
    assert tokens.verify(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) is None
    assert tokens.verify("opl_zz_nope") is None
    assert tokens.verify("") is None
    assert [t.id for t in tokens.list()] == [info.id]
    assert tokens.list()[0].last_used_at is not None
    assert tokens.revoke(info.id) is True
    assert tokens.revoke(info.id) is False
    assert tokens.verify(plaintext) is None
    assert tokens.get(info.id) is None
    db.close()


def test_audit_log_keeps_who_did_what(state_url):
    db = open_state(state_url)
    audit = AuditLog(db)
    audit.record("token:alice", "token.create", target="abc", role="viewer")
    audit.record("cli:root", "token.revoke", target="abc")
    events = audit.list()
    assert [(e.actor, e.action) for e in events] == [
        ("cli:root", "token.revoke"),
        ("token:alice", "token.create"),
    ]
    assert events[1].details == {"role": "viewer"}
    assert events[0].at.tzinfo is not None
    db.close()


def test_bad_url_is_a_one_line_error():
    import pytest

    from opsloop.store.state.db import StateError

    with pytest.raises(StateError) as err:
        open_state("postgresql+psycopg://nobody:secretpw@127.0.0.1:1/none")
    assert "secretpw" not in str(err.value)
    assert "\n" not in str(err.value)
