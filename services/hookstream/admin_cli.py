"""The CLI commands around the admin API: ``admin``, ``webhooks``, ``settings``, ``deliveries``.

Readable tables by default, ``--json`` for scripts; a refused request prints the API's message and
exits 1. URL and token come from HOOKSTREAM_ADMIN__URL/TOKEN unless --url/--token say otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hookstream.settings import Settings

if TYPE_CHECKING:
    from hookstream.admin.client import AdminClient

log = logging.getLogger("hookstream")

Handler = Callable[[argparse.Namespace, Settings], int]
Subparsers = argparse._SubParsersAction  # the type argparse gives add_subparsers()


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _client(args: argparse.Namespace, settings: Settings) -> AdminClient:
    from hookstream.admin.client import AdminClient

    # The answer is the output; httpx's line per request would only repeat it on stderr.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    token = args.token
    if token is None and settings.admin.token is not None:
        token = settings.admin.token.get_secret_value()
    return AdminClient(args.url or settings.admin.url, token)


def _show(args: argparse.Namespace, result: Any, render: Callable[[Any], str]) -> int:
    _out(json.dumps(result, indent=2, ensure_ascii=False) if args.json else render(result))
    return 0


def _read_text(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_json(path: str) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None


def _epoch_ms(text: str) -> int:
    """Epoch milliseconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _webhook_body(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields from --file, then the flags (which win)."""
    body: dict[str, Any] = {}
    if args.file:
        loaded = _read_json(args.file)
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.file} must hold a JSON object of webhook fields")
        body.update(loaded)
    flags = {
        "name": args.name,
        "payload_url": args.payload_url,
        "triggers": args.trigger,
        "smart_group_id": args.smart_group,
        "payload_format": args.format,
        "connect_timeout_s": args.connect_timeout,
        "read_timeout_s": args.read_timeout,
    }
    body.update({key: value for key, value in flags.items() if value is not None})
    if args.failures is not None or args.days is not None:
        policy = dict(body.get("deactivation_policy") or {})
        if args.failures is not None:
            policy["number_of_failures"] = args.failures
        if args.days is not None:
            policy["days_in_past"] = args.days
        body["deactivation_policy"] = policy
    if args.basic_user is not None:
        if args.password_file is None:
            raise ValueError("--basic-user needs --password-file (a file holding the password)")
        password = _read_text(args.password_file).strip()
        body["auth"] = {"kind": "basic", "username": args.basic_user, "password": password}
    elif args.header_file is not None:
        body["auth"] = {"kind": "header", "headers": _read_json(args.header_file)}
    elif args.token_url is not None:
        if args.client_id is None or args.client_secret_file is None:
            raise ValueError("--token-url needs --client-id and --client-secret-file (OAuth2)")
        oauth = {
            "kind": "oauth2",
            "token_url": args.token_url,
            "client_id": args.client_id,
            "client_secret": _read_text(args.client_secret_file).strip(),
            "scope": args.scope,
            "audience": args.audience,
        }
        body["auth"] = {key: value for key, value in oauth.items() if value is not None}
    if args.secret_file is not None:
        body["secret"] = _read_text(args.secret_file).strip()
    pems = {
        "ca_bundle": args.ca_bundle_file,
        "client_cert": args.client_cert_file,
        "client_key": args.client_key_file,
    }
    body.update({field: _read_text(path) for field, path in pems.items() if path is not None})
    return body


def _admin(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.app import run_admin
    from hookstream.cluster import resolve_bootstrap
    from hookstream.topics import require_topics

    log.info("admin API starting with settings %s", settings.masked())
    bootstrap = resolve_bootstrap(settings)
    require_topics(bootstrap, settings.topics, settings.kafka_security)
    return run_admin(settings, bootstrap)


def _webhooks_create(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import webhook_detail

    body = _webhook_body(args)
    if args.id is not None:
        body["id"] = args.id
    with _client(args, settings) as client:
        return _show(args, client.create_webhook(body), webhook_detail)


def _webhooks_list(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import webhooks_table

    with _client(args, settings) as client:
        page = client.list_webhooks(
            active=args.active, trigger=args.trigger, start=args.start, num=args.num
        )
        return _show(args, page, webhooks_table)


def _webhooks_show(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import webhook_detail

    with _client(args, settings) as client:
        return _show(args, client.get_webhook(args.webhook_id), webhook_detail)


def _webhooks_update(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import webhook_detail

    body = _webhook_body(args)
    with _client(args, settings) as client:
        if "deactivation_policy" in body and not args.file:
            current = client.get_webhook(args.webhook_id)["deactivation_policy"]
            body["deactivation_policy"] = {**current, **body["deactivation_policy"]}
        return _show(args, client.update_webhook(args.webhook_id, body), webhook_detail)


def _webhooks_delete(args: argparse.Namespace, settings: Settings) -> int:
    with _client(args, settings) as client:
        client.delete_webhook(args.webhook_id)
    return _show(args, {"deleted": args.webhook_id}, lambda r: f"deleted {r['deleted']}")


def _webhooks_activate(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import webhook_detail

    with _client(args, settings) as client:
        return _show(args, client.activate(args.webhook_id), webhook_detail)


def _webhooks_deactivate(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import webhook_detail

    with _client(args, settings) as client:
        return _show(args, client.deactivate(args.webhook_id, args.reason), webhook_detail)


def _webhooks_ping(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import ping_detail

    with _client(args, settings) as client:
        result = client.ping(args.webhook_id)
    _show(args, result, ping_detail)
    return 0 if result["delivered"] else 1


def _settings_show(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import settings_detail

    with _client(args, settings) as client:
        return _show(args, client.get_settings(), settings_detail)


def _settings_update(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import settings_detail

    body = {
        key: value
        for key, value in {
            "max_attempts": args.attempts,
            "retry_interval_s": args.interval,
            "request_timeout_s": args.timeout,
        }.items()
        if value is not None
    }
    if not body:
        raise ValueError("give at least one of --attempts, --interval, --timeout")
    with _client(args, settings) as client:
        return _show(args, client.update_settings(body), settings_detail)


def _deliveries_list(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import deliveries_table

    params = {
        "outcome": args.outcome,
        "http_status": args.http_status,
        "event_id": args.event,
        "trigger": args.trigger,
        "since": _epoch_ms(args.since) if args.since else None,
        "until": _epoch_ms(args.until) if args.until else None,
        "start": args.start,
        "num": args.num,
        "cursor": args.cursor,
    }
    with _client(args, settings) as client:
        if args.webhook_id is None:
            page = client.search_deliveries(**params)
        else:
            page = client.list_deliveries(args.webhook_id, **params)
        return _show(args, page, deliveries_table)


def _deliveries_show(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import delivery_detail

    with _client(args, settings) as client:
        return _show(args, client.get_delivery(args.delivery_id, args.webhook), delivery_detail)


def _deliveries_redeliver(args: argparse.Namespace, settings: Settings) -> int:
    with _client(args, settings) as client:
        result = client.redeliver(args.webhook_id, args.delivery_id)
    return _show(args, result, lambda r: f"redelivery of {r['delivery_id']} queued")


def _deliveries_recover(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import recovery_detail

    with _client(args, settings) as client:
        job = client.recover(args.webhook_id, _epoch_ms(args.since))
    return _show(args, job, recovery_detail)


def _deliveries_recovery(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import recovery_detail

    with _client(args, settings) as client:
        return _show(args, client.get_recovery(args.job_id), recovery_detail)


def _deliveries_replay(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import replay_detail

    with _client(args, settings) as client:
        job = client.replay(args.webhook_id, _epoch_ms(args.since))
    return _show(args, job, replay_detail)


def _deliveries_replayed(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.tables import replay_detail

    with _client(args, settings) as client:
        return _show(args, client.get_replay(args.job_id), replay_detail)


def _api_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="admin API URL (default: HOOKSTREAM_ADMIN__URL)")
    common.add_argument("--token", help="bearer token (default: HOOKSTREAM_ADMIN__TOKEN)")
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")
    return common


def _webhook_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", help="JSON object of webhook fields ('-' for stdin)")
    parser.add_argument("--name", help="display name")
    parser.add_argument("--payload-url", help="https:// URL the payloads are POSTed to")
    parser.add_argument(
        "--trigger", action="append", help="trigger URI or device event (repeatable)"
    )
    parser.add_argument("--smart-group", help="smart group id for smart-group events")
    parser.add_argument("--format", choices=("json", "xml"), help="payload format")
    parser.add_argument("--connect-timeout", type=float, help="seconds")
    parser.add_argument("--read-timeout", type=float, help="seconds")
    parser.add_argument("--failures", type=int, help="deactivate after this many failures...")
    parser.add_argument("--days", type=int, help="...within this many days")
    parser.add_argument("--basic-user", help="basic authentication user name")
    parser.add_argument("--password-file", help="file holding the basic-auth password")
    parser.add_argument("--header-file", help="JSON file of header authentication")
    parser.add_argument("--secret-file", help="file holding the signing secret (whsec_...)")
    parser.add_argument("--token-url", help="OAuth2 client credentials: the token endpoint")
    parser.add_argument("--client-id", help="OAuth2 client id")
    parser.add_argument("--client-secret-file", help="file holding the OAuth2 client secret")
    parser.add_argument("--scope", help="OAuth2 scope to ask for (optional)")
    parser.add_argument("--audience", help="OAuth2 audience to ask for (optional)")
    parser.add_argument("--ca-bundle-file", help="PEM file of CAs the receiver may chain to")
    parser.add_argument("--client-cert-file", help="PEM client certificate (mutual TLS)")
    parser.add_argument("--client-key-file", help="PEM private key of the client certificate")


def _leaf(
    group: Subparsers[argparse.ArgumentParser],
    name: str,
    help_text: str,
    handler: Handler,
    common: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_text, parents=[common])
    parser.set_defaults(handler=handler)
    return parser


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=int, default=1, help="1-based index of the first")
    parser.add_argument("--num", type=int, default=20, help="how many (up to 100)")


def add_admin_commands(commands: Subparsers[argparse.ArgumentParser]) -> None:
    """Add ``admin``, ``webhooks``, ``settings`` and ``deliveries`` to the command tree."""
    commands.add_parser(
        "admin", help="run the admin REST API (webhooks, settings, notification status)"
    ).set_defaults(handler=_admin)
    common = _api_options()

    webhooks = commands.add_parser("webhooks", help="manage webhooks through the admin API")
    group = webhooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = _leaf(group, "create", "register a webhook", _webhooks_create, common)
    create.add_argument("--id", help="webhook id (generated if absent)")
    _webhook_options(create)
    listing = _leaf(group, "list", "list webhooks", _webhooks_list, common)
    state = listing.add_mutually_exclusive_group()
    state.add_argument("--active", dest="active", action="store_const", const=True)
    state.add_argument("--inactive", dest="active", action="store_const", const=False)
    listing.add_argument("--trigger", help="only webhooks subscribed to this trigger")
    _paging(listing)
    for name, help_text, handler in (
        ("show", "show one webhook", _webhooks_show),
        ("update", "change a webhook (only the fields given)", _webhooks_update),
        ("delete", "delete a webhook", _webhooks_delete),
        ("activate", "activate a webhook", _webhooks_activate),
        ("deactivate", "deactivate a webhook", _webhooks_deactivate),
        ("ping", "send a test event to the payload URL now", _webhooks_ping),
    ):
        leaf = _leaf(group, name, help_text, handler, common)
        leaf.add_argument("webhook_id")
        if name == "update":
            _webhook_options(leaf)
        if name == "deactivate":
            leaf.add_argument("--reason", help="why (shown with the webhook)")

    settings = commands.add_parser("settings", help="global delivery settings (admin API)")
    group = settings.add_subparsers(dest="action", required=True, metavar="ACTION")
    _leaf(group, "show", "show the delivery settings", _settings_show, common)
    update = _leaf(group, "update", "change the delivery settings", _settings_update, common)
    update.add_argument("--attempts", type=int, help="delivery attempts (1 to 5)")
    update.add_argument("--interval", type=float, help="seconds between attempts (1 to 100)")
    update.add_argument("--timeout", type=float, help="notification timeout in seconds (<= 60)")

    deliveries = commands.add_parser("deliveries", help="notification status (admin API)")
    group = deliveries.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = _leaf(
        group, "list", "recent deliveries (of one webhook, or all)", _deliveries_list, common
    )
    listing.add_argument("webhook_id", nargs="?", help="only this webhook's deliveries")
    listing.add_argument("--outcome", choices=("delivered", "failed", "pending"))
    listing.add_argument("--http-status", type=int, help="HTTP status of the last attempt")
    listing.add_argument("--event", help="only deliveries of this event id")
    listing.add_argument("--trigger", help="only deliveries of this trigger")
    listing.add_argument("--since", help="fired at or after (epoch ms or ISO 8601, UTC)")
    listing.add_argument("--until", help="fired before (epoch ms or ISO 8601, UTC)")
    listing.add_argument("--cursor", help="the next_cursor a previous page printed")
    _paging(listing)
    show = _leaf(
        group, "show", "one delivery: attempts, answers, payload", _deliveries_show, common
    )
    show.add_argument("delivery_id")
    show.add_argument("--webhook", help="the delivery's webhook id (optional)")
    again = _leaf(group, "redeliver", "send a delivery again", _deliveries_redeliver, common)
    again.add_argument("webhook_id")
    again.add_argument("delivery_id")
    recover = _leaf(
        group,
        "recover",
        "send every failed delivery of a webhook since a time again (one job; repeating the "
        "same command finds the same job)",
        _deliveries_recover,
        common,
    )
    recover.add_argument("webhook_id")
    recover.add_argument(
        "--since", required=True, help="fired at or after (epoch ms or ISO 8601, UTC)"
    )
    progress = _leaf(
        group, "recover-status", "progress of a recovery job", _deliveries_recovery, common
    )
    progress.add_argument("job_id")
    replay = _leaf(
        group,
        "replay",
        "match the event topics again for one webhook from a time (after an outage; same "
        "delivery ids as a live match)",
        _deliveries_replay,
        common,
    )
    replay.add_argument("webhook_id")
    replay.add_argument(
        "--since", required=True, help="events written at or after (epoch ms or ISO 8601, UTC)"
    )
    replayed = _leaf(group, "replay-status", "progress of a replay", _deliveries_replayed, common)
    replayed.add_argument("job_id")

    from hookstream.event_types_cli import add_event_type_commands

    add_event_type_commands(commands, common)
