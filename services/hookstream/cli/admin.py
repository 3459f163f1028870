"""The CLI commands around the admin API: ``admin``, ``webhooks``, ``settings`` (and, from
``cli.deliveries`` and ``cli.event_types``, ``deliveries`` and ``event-types``).

Readable tables by default, ``--json`` for scripts; a refused request prints the API's message and
exits 1. URL and token come from HOOKSTREAM_ADMIN__URL/TOKEN unless --url/--token say otherwise.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from hookstream.cli.common import (
    Subparsers,
    api_options,
    client_for,
    leaf,
    paging,
    read_json,
    read_text,
    show,
)
from hookstream.cli.deliveries import add_delivery_commands
from hookstream.settings import Settings

if TYPE_CHECKING:
    pass

log = logging.getLogger("hookstream")


def _webhook_body(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields from --file, then the flags (which win)."""
    body: dict[str, Any] = {}
    if args.file:
        loaded = read_json(args.file)
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
        password = read_text(args.password_file).strip()
        body["auth"] = {"kind": "basic", "username": args.basic_user, "password": password}
    elif args.header_file is not None:
        body["auth"] = {"kind": "header", "headers": read_json(args.header_file)}
    elif args.token_url is not None:
        if args.client_id is None or args.client_secret_file is None:
            raise ValueError("--token-url needs --client-id and --client-secret-file (OAuth2)")
        oauth = {
            "kind": "oauth2",
            "token_url": args.token_url,
            "client_id": args.client_id,
            "client_secret": read_text(args.client_secret_file).strip(),
            "scope": args.scope,
            "audience": args.audience,
        }
        body["auth"] = {key: value for key, value in oauth.items() if value is not None}
    if args.secret_file is not None:
        body["secret"] = read_text(args.secret_file).strip()
    pems = {
        "ca_bundle": args.ca_bundle_file,
        "client_cert": args.client_cert_file,
        "client_key": args.client_key_file,
    }
    body.update({field: read_text(path) for field, path in pems.items() if path is not None})
    return body


def _admin(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.admin.app import run_admin
    from hookstream.kafka.cluster import resolve_bootstrap
    from hookstream.kafka.topics import require_topics

    log.info("admin API starting with settings %s", settings.masked())
    bootstrap = resolve_bootstrap(settings)
    require_topics(bootstrap, settings.topics, settings.kafka_security)
    return run_admin(settings, bootstrap)


def _webhooks_create(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import webhook_detail

    body = _webhook_body(args)
    if args.id is not None:
        body["id"] = args.id
    with client_for(args, settings) as client:
        return show(args, client.create_webhook(body), webhook_detail)


def _webhooks_list(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import webhooks_table

    with client_for(args, settings) as client:
        page = client.list_webhooks(
            active=args.active, trigger=args.trigger, start=args.start, num=args.num
        )
        return show(args, page, webhooks_table)


def _webhooks_show(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import webhook_detail

    with client_for(args, settings) as client:
        return show(args, client.get_webhook(args.webhook_id), webhook_detail)


def _webhooks_update(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import webhook_detail

    body = _webhook_body(args)
    with client_for(args, settings) as client:
        if "deactivation_policy" in body and not args.file:
            current = client.get_webhook(args.webhook_id)["deactivation_policy"]
            body["deactivation_policy"] = {**current, **body["deactivation_policy"]}
        return show(args, client.update_webhook(args.webhook_id, body), webhook_detail)


def _webhooks_delete(args: argparse.Namespace, settings: Settings) -> int:
    with client_for(args, settings) as client:
        client.delete_webhook(args.webhook_id)
    return show(args, {"deleted": args.webhook_id}, lambda r: f"deleted {r['deleted']}")


def _webhooks_activate(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import webhook_detail

    with client_for(args, settings) as client:
        return show(args, client.activate(args.webhook_id), webhook_detail)


def _webhooks_deactivate(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import webhook_detail

    with client_for(args, settings) as client:
        return show(args, client.deactivate(args.webhook_id, args.reason), webhook_detail)


def _webhooks_ping(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import ping_detail

    with client_for(args, settings) as client:
        result = client.ping(args.webhook_id)
    show(args, result, ping_detail)
    return 0 if result["delivered"] else 1


def _settings_show(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import settings_detail

    with client_for(args, settings) as client:
        return show(args, client.get_settings(), settings_detail)


def _settings_update(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import settings_detail

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
    with client_for(args, settings) as client:
        return show(args, client.update_settings(body), settings_detail)


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


def add_admin_commands(commands: Subparsers[argparse.ArgumentParser]) -> None:
    """Add ``admin``, ``webhooks``, ``settings`` and ``deliveries`` to the command tree."""
    commands.add_parser(
        "admin", help="run the admin REST API (webhooks, settings, notification status)"
    ).set_defaults(handler=_admin)
    common = api_options()

    webhooks = commands.add_parser("webhooks", help="manage webhooks through the admin API")
    group = webhooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = leaf(group, "create", "register a webhook", _webhooks_create, common)
    create.add_argument("--id", help="webhook id (generated if absent)")
    _webhook_options(create)
    listing = leaf(group, "list", "list webhooks", _webhooks_list, common)
    state = listing.add_mutually_exclusive_group()
    state.add_argument("--active", dest="active", action="store_const", const=True)
    state.add_argument("--inactive", dest="active", action="store_const", const=False)
    listing.add_argument("--trigger", help="only webhooks subscribed to this trigger")
    paging(listing)
    for name, help_text, handler in (
        ("show", "show one webhook", _webhooks_show),
        ("update", "change a webhook (only the fields given)", _webhooks_update),
        ("delete", "delete a webhook", _webhooks_delete),
        ("activate", "activate a webhook", _webhooks_activate),
        ("deactivate", "deactivate a webhook", _webhooks_deactivate),
        ("ping", "send a test event to the payload URL now", _webhooks_ping),
    ):
        action = leaf(group, name, help_text, handler, common)
        action.add_argument("webhook_id")
        if name == "update":
            _webhook_options(action)
        if name == "deactivate":
            action.add_argument("--reason", help="why (shown with the webhook)")

    settings = commands.add_parser("settings", help="global delivery settings (admin API)")
    group = settings.add_subparsers(dest="action", required=True, metavar="ACTION")
    leaf(group, "show", "show the delivery settings", _settings_show, common)
    update = leaf(group, "update", "change the delivery settings", _settings_update, common)
    update.add_argument("--attempts", type=int, help="delivery attempts (1 to 5)")
    update.add_argument("--interval", type=float, help="seconds between attempts (1 to 100)")
    update.add_argument("--timeout", type=float, help="notification timeout in seconds (<= 60)")

    add_delivery_commands(commands, common)

    from hookstream.cli.event_types import add_event_type_commands

    add_event_type_commands(commands, common)
