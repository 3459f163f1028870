"""Helpers of the console tests: signing in over plain HTTP, and reading a page's CSRF token."""

from __future__ import annotations

import re

import httpx

CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF_INPUT.search(page)
    assert found is not None, f"no CSRF field on the page:\n{page[:2000]}"
    return found.group(1)


def sign_in(base_url: str, token: str) -> tuple[httpx.Client, str]:
    """A client signed in to the console with ``token``, and its session's CSRF token."""
    client = httpx.Client(base_url=base_url, timeout=60)
    form = client.get("/console/login")
    assert form.status_code == 200, form.text
    answer = client.post("/console/login", data={"csrf": csrf_of(form.text), "token": token})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/webhooks"
    page = client.get("/console/webhooks")
    assert page.status_code == 200, page.text
    return client, csrf_of(page.text)
