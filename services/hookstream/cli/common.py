"""What the CLI commands around the admin API share: the client from flags and settings, JSON
or table output, reading files, times, and the argparse plumbing."""

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
    from hookstream.cli.api_client import AdminClient

Handler = Callable[[argparse.Namespace, Settings], int]
Subparsers = argparse._SubParsersAction  # the type argparse gives add_subparsers()


def out(text: str) -> None:
    """Print a command's answer (the CLI's output goes to stdout, its logs to stderr)."""
    sys.stdout.write(text + "\n")


def client_for(args: argparse.Namespace, settings: Settings) -> AdminClient:
    """The admin API client of --url/--token, else of HOOKSTREAM_ADMIN__URL/TOKEN."""
    from hookstream.cli.api_client import AdminClient

    # The answer is the output; httpx's line per request would only repeat it on stderr.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    token = args.token
    if token is None and settings.admin.token is not None:
        token = settings.admin.token.get_secret_value()
    return AdminClient(args.url or settings.admin.url, token)


def show(args: argparse.Namespace, result: Any, render: Callable[[Any], str]) -> int:
    """Print an answer as JSON with --json (for scripts), else rendered for people; exit 0."""
    out(json.dumps(result, indent=2, ensure_ascii=False) if args.json else render(result))
    return 0


def read_text(path: str) -> str:
    """A file's text (``-``: stdin); a file that cannot be read is the user's input error."""
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_json(path: str) -> Any:
    """A file's JSON (``-``: stdin), refused with the parser's message when it is not JSON."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None


def epoch_ms(text: str) -> int:
    """Epoch milliseconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def api_options() -> argparse.ArgumentParser:
    """The flags every admin API command takes: --url, --token, --json."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="admin API URL (default: HOOKSTREAM_ADMIN__URL)")
    common.add_argument("--token", help="bearer token (default: HOOKSTREAM_ADMIN__TOKEN)")
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")
    return common


def leaf(
    group: Subparsers[argparse.ArgumentParser],
    name: str,
    help_text: str,
    handler: Handler,
    common: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """An action of a command group, with the admin API flags, run by ``handler``."""
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_text, parents=[common])
    parser.set_defaults(handler=handler)
    return parser


def paging(parser: argparse.ArgumentParser) -> None:
    """--start and --num of the listing commands."""
    parser.add_argument("--start", type=int, default=1, help="1-based index of the first")
    parser.add_argument("--num", type=int, default=20, help="how many (up to 100)")
