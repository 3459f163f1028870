"""The admin console over plain HTTP: sign-in, sessions, CSRF on every form, no page without
signing in, security headers, and webhook forms checked by the API's rules."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import APIRoute
from test_admin_support import ROTATED_TOKEN, TOKEN, AdminServer, with_admin

from console_support import csrf_of, sign_in
from hookstream.admin.console import ROUTERS
from hookstream.admin.console.pages import PREFIX
from hookstream.kafka.topics import create_topics
from hookstream.settings import Settings
from support import Pipeline, Receiver, unique_settings

pytestmark = pytest.mark.integration

PARAM = re.compile(r"\{([a-z_]+)\}")


@dataclass
class Env:
    settings: Settings
    server: AdminServer
    receiver: Receiver


@pytest.fixture(scope="module")
def env(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    settings = with_admin(unique_settings(kafka_bootstrap))
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path_factory.mktemp("console-logs"))
    server = AdminServer(settings)
    receiver = Receiver()
    try:
        pipeline.start_matcher()
        server.start()
        yield Env(settings, server, receiver)
    finally:
        receiver.close()
        server.stop()
        pipeline.stop()


def _console_routes(method: str) -> list[str]:
    """Every console path answering ``method``, as the app mounts them."""
    return sorted(
        PREFIX + route.path
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and method in (route.methods or ())
    )


def _fill(path: str, webhook_id: str) -> str:
    values = {"webhook_id": webhook_id, "delivery_id": "d-" + uuid.uuid4().hex[:8]}
    return PARAM.sub(lambda m: values[m.group(1)], path)


def _create(client: httpx.Client, csrf: str, env: Env, **fields: str) -> httpx.Response:
    form = {
        "csrf": csrf,
        "name": "Console hook",
        "payload_url": env.receiver.url("/console-hook"),
        "triggers": "/items/update",
        "auth_kind": "none",
        "payload_format": "json",
        "number_of_failures": "5",
        "days_in_past": "5",
        "secret_action": "none",
        **fields,
    }
    return client.post("/console/webhooks/new", data=form)


def test_no_page_is_reachable_without_signing_in(env: Env) -> None:
    gets = _console_routes("GET")
    posts = _console_routes("POST")
    assert "/console/webhooks/{webhook_id}/edit" in gets and "/console/settings" in posts
    with httpx.Client(base_url=env.server.url, timeout=60) as anonymous:
        for path in gets:
            if path == "/console/login":
                continue
            answer = anonymous.get(_fill(path, "some-hook"))
            assert answer.status_code == 303, (path, answer.text)
            assert answer.headers["location"] == "/console/login", path
        for path in posts:
            if path == "/console/login":
                continue
            answer = anonymous.post(_fill(path, "some-hook"), data={"csrf": "x"})
            assert answer.status_code == 303, (path, answer.text)
            assert answer.headers["location"] == "/console/login", path
        # A forged cookie is no session either.
        anonymous.cookies.set("hookstream_console", "v1.9999999999.n.m.sig", path="/console")
        assert anonymous.get("/console/webhooks").status_code == 303


def test_every_form_refuses_a_missing_or_wrong_csrf_token(env: Env) -> None:
    client, csrf = sign_in(env.server.url, TOKEN)
    other, other_csrf = sign_in(env.server.url, ROTATED_TOKEN)
    with closing(client), closing(other):
        created = _create(client, csrf, env, name="CSRF target")
        assert created.status_code == 303, created.text
        webhook_id = created.headers["location"].split("/")[3].split("?")[0]
        posts = [p for p in _console_routes("POST") if p != "/console/login"]
        assert len(posts) >= 9, posts
        for path in posts:
            url = _fill(path, webhook_id)
            for data in ({}, {"csrf": ""}, {"csrf": "wrong"}, {"csrf": other_csrf}):
                answer = client.post(url, data={**data, "reason": "x", "name": "y"})
                assert answer.status_code == 403, (path, data, answer.text)
                assert "security token" in answer.text
        # Nothing was changed by the refused forms.
        page = client.get(f"/console/webhooks/{webhook_id}")
        assert page.status_code == 200 and 'id="state">active<' in page.text
        assert client.get("/console/webhooks").status_code == 200  # still signed in
    with httpx.Client(base_url=env.server.url, timeout=60) as fresh:
        form = fresh.get("/console/login")
        token = csrf_of(form.text)
        assert fresh.post("/console/login", data={"token": TOKEN}).status_code == 403
        assert fresh.post("/console/login", data={"csrf": "no", "token": TOKEN}).status_code == 403
        fresh.cookies.clear()
        assert fresh.post("/console/login", data={"csrf": token, "token": TOKEN}).status_code == 403


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_the_session(env: Env) -> None:
    with httpx.Client(base_url=env.server.url, timeout=60) as client:
        form = client.get("/console/login")
        csp = form.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp
        assert "style-src 'self'" in csp and "unsafe-inline" not in csp
        assert "<script" not in form.text and "style=" not in form.text
        wrong = client.post("/console/login", data={"csrf": csrf_of(form.text), "token": "nope"})
        assert wrong.status_code == 401 and "not one of the admin tokens" in wrong.text
        answer = client.post("/console/login", data={"csrf": csrf_of(wrong.text), "token": TOKEN})
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
        assert "secure" not in cookie  # served over plain http here
        session = client.cookies.get("hookstream_console")
        assert session is not None and TOKEN not in session
        page = client.get("/console/webhooks")
        assert page.status_code == 200 and "<script" not in page.text
        logout = client.post("/console/logout", data={"csrf": csrf_of(page.text)})
        assert logout.status_code == 303 and logout.headers["location"] == "/console/login"
        assert client.get("/console/webhooks").status_code == 303
        # The old cookie, presented again after sign-out, is refused too.
        client.cookies.set("hookstream_console", session, path="/console")
        assert client.get("/console/webhooks").status_code == 303


def test_forms_apply_the_api_rules_next_to_the_field(env: Env) -> None:
    client, csrf = sign_in(env.server.url, TOKEN)
    with closing(client):
        forbidden = _create(
            client, csrf, env, auth_kind="header", auth_headers="Content-Type: text/plain"
        )
        assert forbidden.status_code == 422
        assert 'id="error-auth"' in forbidden.text and "Content-Type" in forbidden.text
        no_triggers = _create(client, csrf, env, triggers="")
        assert no_triggers.status_code == 422 and 'id="error-triggers"' in no_triggers.text
        bad_timeout = _create(client, csrf, env, read_timeout_s="600")
        assert bad_timeout.status_code == 422 and 'id="error-read_timeout_s"' in bad_timeout.text
        unknown_type = _create(client, csrf, env, triggers_extra="/nosuchsource/created")
        assert unknown_type.status_code == 422 and 'id="error-triggers"' in unknown_type.text
        signed = _create(
            client,
            csrf,
            env,
            name="Signed hook",
            secret_action="generate",
            auth_kind="basic",
            auth_username="hook",
            auth_password="pw-123456",
        )
        assert signed.status_code == 200 and "whsec_" in signed.text
        webhook_id = re.search(r"/console/webhooks/([0-9a-f]+)\"", signed.text)
        assert webhook_id is not None
        edit = client.get(f"/console/webhooks/{webhook_id.group(1)}/edit")
        assert edit.status_code == 200 and "pw-123456" not in edit.text
        assert "A password is stored" in edit.text
        saved = client.post(
            f"/console/webhooks/{webhook_id.group(1)}/edit",
            data={
                "csrf": csrf,
                "name": "Signed hook renamed",
                "payload_url": env.receiver.url("/console-hook"),
                "triggers": "/items/update",
                "auth_kind": "basic",
                "auth_username": "hook",
                "payload_format": "json",
                "number_of_failures": "5",
                "days_in_past": "5",
                "secret_action": "keep",
            },
        )
        assert saved.status_code == 303, saved.text
        shown = client.get(saved.headers["location"])
        assert "Signed hook renamed" in shown.text and "The changes were saved." in shown.text
        settings = client.post(
            "/console/settings",
            data={"csrf": csrf, "max_attempts": "9", "retry_interval_s": "30"},
        )
        assert settings.status_code == 422 and 'id="error-max_attempts"' in settings.text
