"""The ``deliveries`` commands of the CLI: notification status, redelivery, recovery and replay
jobs through the admin API (``hookstream deliveries ...``)."""

from __future__ import annotations

import argparse

from hookstream.cli.common import Subparsers, client_for, epoch_ms, leaf, paging, show
from hookstream.settings import Settings


def _deliveries_list(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import deliveries_table

    params = {
        "outcome": args.outcome,
        "http_status": args.http_status,
        "event_id": args.event,
        "trigger": args.trigger,
        "since": epoch_ms(args.since) if args.since else None,
        "until": epoch_ms(args.until) if args.until else None,
        "start": args.start,
        "num": args.num,
        "cursor": args.cursor,
    }
    with client_for(args, settings) as client:
        if args.webhook_id is None:
            page = client.search_deliveries(**params)
        else:
            page = client.list_deliveries(args.webhook_id, **params)
        return show(args, page, deliveries_table)


def _deliveries_show(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import delivery_detail

    with client_for(args, settings) as client:
        return show(args, client.get_delivery(args.delivery_id, args.webhook), delivery_detail)


def _deliveries_redeliver(args: argparse.Namespace, settings: Settings) -> int:
    with client_for(args, settings) as client:
        result = client.redeliver(args.webhook_id, args.delivery_id)
    return show(args, result, lambda r: f"redelivery of {r['delivery_id']} queued")


def _deliveries_recover(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import recovery_detail

    with client_for(args, settings) as client:
        job = client.recover(args.webhook_id, epoch_ms(args.since))
    return show(args, job, recovery_detail)


def _deliveries_recovery(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import recovery_detail

    with client_for(args, settings) as client:
        return show(args, client.get_recovery(args.job_id), recovery_detail)


def _deliveries_replay(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import replay_detail

    with client_for(args, settings) as client:
        job = client.replay(args.webhook_id, epoch_ms(args.since))
    return show(args, job, replay_detail)


def _deliveries_replayed(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.tables import replay_detail

    with client_for(args, settings) as client:
        return show(args, client.get_replay(args.job_id), replay_detail)


def add_delivery_commands(
    commands: Subparsers[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``deliveries`` and its actions to the command tree."""
    deliveries = commands.add_parser("deliveries", help="notification status (admin API)")
    group = deliveries.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = leaf(
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
    paging(listing)
    detail = leaf(
        group, "show", "one delivery: attempts, answers, payload", _deliveries_show, common
    )
    detail.add_argument("delivery_id")
    detail.add_argument("--webhook", help="the delivery's webhook id (optional)")
    again = leaf(group, "redeliver", "send a delivery again", _deliveries_redeliver, common)
    again.add_argument("webhook_id")
    again.add_argument("delivery_id")
    recover = leaf(
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
    progress = leaf(
        group, "recover-status", "progress of a recovery job", _deliveries_recovery, common
    )
    progress.add_argument("job_id")
    replay = leaf(
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
    replayed = leaf(group, "replay-status", "progress of a replay", _deliveries_replayed, common)
    replayed.add_argument("job_id")
