"""A small synchronous client of the admin API, for the CLI (imports nothing of the server)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from hookstream.core.errors import HookstreamError

API_PREFIX = "/api/v1"


class AdminApiError(HookstreamError):
    """The admin API answered with an error, or could not be reached; the message says which."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return str(body)[:500]


def _seg(value: str) -> str:
    return quote(value, safe="")


class AdminClient:
    """Calls the admin API with a bearer token; every non-2xx answer raises ``AdminApiError``."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX, headers=headers, timeout=timeout_s, trust_env=False
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """One request; the decoded JSON answer (None for 204)."""
        query = {key: value for key, value in (params or {}).items() if value is not None}
        try:
            response = self._http.request(method, path, json=body, params=query)
        except httpx.HTTPError as exc:
            raise AdminApiError(
                f"cannot reach the admin API at {self.url}: {exc}; is `hookstream admin` "
                f"running there (HOOKSTREAM_ADMIN__URL or --url)?"
            ) from None
        if response.status_code == 401:
            raise AdminApiError(
                f"401 {_detail(response)}: set HOOKSTREAM_ADMIN__TOKEN (or --token) to one of "
                f"the admin service's HOOKSTREAM_ADMIN__TOKENS",
                401,
            )
        if response.status_code >= 400:
            raise AdminApiError(f"{response.status_code} {_detail(response)}", response.status_code)
        return response.json() if response.status_code != 204 and response.content else None

    def create_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", "/webhooks", body)
        return result

    def list_webhooks(self, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/webhooks", params=params)
        return result

    def get_webhook(self, webhook_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/webhooks/{_seg(webhook_id)}")
        return result

    def update_webhook(self, webhook_id: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.call("PATCH", f"/webhooks/{_seg(webhook_id)}", body)
        return result

    def delete_webhook(self, webhook_id: str) -> None:
        self.call("DELETE", f"/webhooks/{_seg(webhook_id)}")

    def activate(self, webhook_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/webhooks/{_seg(webhook_id)}/activate")
        return result

    def deactivate(self, webhook_id: str, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else None
        result: dict[str, Any] = self.call("POST", f"/webhooks/{_seg(webhook_id)}/deactivate", body)
        return result

    def ping(self, webhook_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/webhooks/{_seg(webhook_id)}/ping")
        return result

    def get_settings(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/settings")
        return result

    def update_settings(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.call("PATCH", "/settings", body)
        return result

    def list_deliveries(self, webhook_id: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "GET", f"/webhooks/{_seg(webhook_id)}/deliveries", params=params
        )
        return result

    def search_deliveries(self, **params: Any) -> dict[str, Any]:
        """Deliveries of every webhook (filter ``webhook_id`` to one)."""
        result: dict[str, Any] = self.call("GET", "/deliveries", params=params)
        return result

    def get_delivery(self, delivery_id: str, webhook_id: str | None = None) -> dict[str, Any]:
        path = f"/deliveries/{_seg(delivery_id)}"
        if webhook_id is not None:
            path = f"/webhooks/{_seg(webhook_id)}{path}"
        result: dict[str, Any] = self.call("GET", path)
        return result

    def redeliver(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        path = f"/webhooks/{_seg(webhook_id)}/deliveries/{_seg(delivery_id)}/redeliver"
        result: dict[str, Any] = self.call("POST", path)
        return result

    def recover(self, webhook_id: str, since: int) -> dict[str, Any]:
        """Start (or find: the same request names the same job) a bulk recovery."""
        path = f"/webhooks/{_seg(webhook_id)}/recover"
        result: dict[str, Any] = self.call("POST", path, body={"since": since})
        return result

    def get_recovery(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/recoveries/{_seg(job_id)}")
        return result

    def replay(self, webhook_id: str, since: int) -> dict[str, Any]:
        """Start a replay from Kafka for one webhook (or find the same request's job)."""
        path = f"/webhooks/{_seg(webhook_id)}/replay"
        result: dict[str, Any] = self.call("POST", path, body={"since": since})
        return result

    def get_replay(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/replays/{_seg(job_id)}")
        return result
