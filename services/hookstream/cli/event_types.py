"""The ``event-types`` commands of the CLI: list, show, create, update and delete catalog types
through the admin API (``hookstream event-types ...``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from hookstream.cli.common import Subparsers, client_for, leaf, read_json, show
from hookstream.settings import Settings


def _render_list(page: dict[str, Any]) -> str:
    from hookstream.cli.tables import table

    rows = [
        (item["name"], item["family"], " ".join(item["triggers"]), item.get("description"))
        for item in page["items"]
    ]
    return table(("TYPE", "FAMILY", "TRIGGERS", "DESCRIPTION"), rows)


def _render_one(item: dict[str, Any]) -> str:
    lines = [
        f"type         {item['name']} ({item['family']})",
        f"triggers     {' '.join(item['triggers'])}",
        f"description  {item.get('description') or '-'}",
    ]
    if item.get("json_schema") is not None:
        lines.append(f"schema       {json.dumps(item['json_schema'])} ({item['schema_mode']})")
    if item.get("example") is not None:
        lines.append(f"example      {json.dumps(item['example'])}")
    return "\n".join(lines)


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.file:
        loaded = read_json(args.file)
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.file} must hold a JSON object of event-type fields")
        body.update(loaded)
    for key, value in (
        ("source", args.source),
        ("operation", args.operation),
        ("description", args.description),
    ):
        if value is not None:
            body[key] = value
    if args.schema_file:
        body["json_schema"] = read_json(args.schema_file)
    if args.example_file:
        body["example"] = read_json(args.example_file)
    if args.warn_only:
        body["schema_mode"] = "warn"
    return body


def _list(args: argparse.Namespace, settings: Settings) -> int:
    with client_for(args, settings) as client:
        page = client.call("GET", "/event-types")
        if args.declared:
            page = {**page, "items": [i for i in page["items"] if i["family"] == "catalog"]}
        return show(args, page, _render_list)


def _show_one(args: argparse.Namespace, settings: Settings) -> int:
    with client_for(args, settings) as client:
        return show(args, client.call("GET", f"/event-types/{args.name}"), _render_one)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    with client_for(args, settings) as client:
        return show(args, client.call("POST", "/event-types", _body(args)), _render_one)


def _update(args: argparse.Namespace, settings: Settings) -> int:
    with client_for(args, settings) as client:
        current = client.call("GET", f"/event-types/{args.name}")
        fields = ("source", "operation", "description", "json_schema", "schema_mode", "example")
        body = {key: current.get(key) for key in fields} | _body(args)
        return show(args, client.call("PUT", f"/event-types/{args.name}", body), _render_one)


def _delete(args: argparse.Namespace, settings: Settings) -> int:
    with client_for(args, settings) as client:
        client.call("DELETE", f"/event-types/{args.name}")
    return show(args, {"deleted": args.name}, lambda r: f"event type {r['deleted']} deleted")


def _type_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", help="JSON object of event-type fields ('-' for stdin)")
    parser.add_argument("--source", help="event source, e.g. orders")
    parser.add_argument("--operation", help="what happened, e.g. created")
    parser.add_argument("--description", help="what the event means")
    parser.add_argument("--schema-file", help="JSON Schema of the events' properties")
    parser.add_argument("--example-file", help="example properties (JSON)")
    parser.add_argument(
        "--warn-only", action="store_true", help="log events breaking the schema, do not refuse"
    )


def add_event_type_commands(
    commands: Subparsers[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``event-types`` (list, show, create, update, delete) to the command tree."""
    types = commands.add_parser("event-types", help="the event-type catalog (admin API)")
    group = types.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = leaf(group, "list", "built-in and declared event types", _list, common)
    listing.add_argument("--declared", action="store_true", help="only declared types")
    leaf(group, "show", "one declared event type", _show_one, common).add_argument("name")
    _type_options(leaf(group, "create", "declare an event type", _create, common))
    update = leaf(group, "update", "change a declared event type", _update, common)
    update.add_argument("name")
    _type_options(update)
    leaf(group, "delete", "remove an unused event type", _delete, common).add_argument("name")
