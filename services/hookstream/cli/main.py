"""The ``hookstream`` command: the local broker, topics, the services and the demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import aiokafka.errors
import kafka.errors
from pydantic import ValidationError

from hookstream import __version__
from hookstream.cli.admin import add_admin_commands
from hookstream.cli.common import Subparsers
from hookstream.core.errors import BrokerAlreadyRunningError, HookstreamError
from hookstream.core.formatting import format_status
from hookstream.logs import configure_logging
from hookstream.records.codec import describe_validation_error
from hookstream.settings import Settings, get_settings

if TYPE_CHECKING:
    from hookstream.localkafka.cluster import LocalCluster

log = logging.getLogger("hookstream")

Handler = Callable[[argparse.Namespace, Settings], int]


def _kafka_start(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.localkafka.broker import LocalBroker
    from hookstream.localkafka.cluster import LocalCluster

    brokers = args.brokers or settings.local_kafka.brokers
    if brokers > 1:
        if LocalBroker(settings.local_kafka).info() is not None:
            print(
                "hookstream: the single local broker runs; `hookstream kafka stop` it before "
                "starting a cluster",
                file=sys.stderr,
            )
            return 1
        cluster = LocalCluster(settings.local_kafka, brokers)
        try:
            cluster.start()
        except BrokerAlreadyRunningError as exc:
            print(f"already running: {exc}")
            return 0
        print(
            f"Kafka {settings.local_kafka.version}: a cluster of {brokers} brokers is ready at "
            f"{cluster.bootstrap}"
        )
        print(f"logs: {cluster.workdir}/node-*/broker.log")
        print(
            "create the topics replicated on it: "
            f"HOOKSTREAM_TOPICS__REPLICATION_FACTOR={min(brokers, 3)} hookstream topics create"
        )
        return 0
    existing = LocalCluster.existing(settings.local_kafka)
    if existing is not None and existing.running():
        print(
            f"hookstream: a local cluster runs at {existing.bootstrap}; `hookstream kafka stop` "
            f"it before starting the single broker",
            file=sys.stderr,
        )
        return 1
    broker = LocalBroker(settings.local_kafka)
    try:
        info = broker.start()
    except BrokerAlreadyRunningError as exc:
        print(f"already running: {exc}")
        return 0
    print(f"Kafka {settings.local_kafka.version} is ready at {info.bootstrap} (pid {info.pid})")
    print(f"logs: {info.log_file}")
    return 0


def _kafka_stop(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.localkafka.broker import LocalBroker
    from hookstream.localkafka.cluster import LocalCluster

    stopped = False
    if LocalBroker(settings.local_kafka).stop():
        print("stopped the local Kafka broker")
        stopped = True
    cluster = LocalCluster.existing(settings.local_kafka)
    if cluster is not None and cluster.stop():
        print(f"stopped the local Kafka cluster of {cluster.brokers} brokers")
        stopped = True
    if not stopped:
        print("no local Kafka broker was running")
    return 0


def _kafka_status(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.localkafka.broker import LocalBroker, broker_ready
    from hookstream.localkafka.cluster import LocalCluster

    info = LocalBroker(settings.local_kafka).info()
    if info is not None:
        state = "ready" if broker_ready(info.bootstrap) else "starting or not answering"
        print(f"running (pid {info.pid}) at {info.bootstrap}: {state}; logs: {info.log_file}")
        return 0
    cluster = LocalCluster.existing(settings.local_kafka)
    if cluster is None or not cluster.running():
        print("not running")
        return 3
    _print_cluster(cluster, settings)
    return 0


def _print_cluster(cluster: LocalCluster, settings: Settings) -> None:
    """Each broker up or down, then who leads each partition of hookstream's topics."""
    from hookstream.localkafka.cluster import live_broker_ids, partition_states

    live = set(live_broker_ids(cluster.bootstrap))
    print(f"local cluster of {cluster.brokers} brokers at {cluster.bootstrap}")
    for node in cluster.nodes():
        if node.node_id in live:
            state = "up"
        elif node.pid is not None:
            state = "starting or not answering"
        else:
            state = "down"
        pid = f"pid {node.pid}" if node.pid is not None else "no process"
        print(f"  broker {node.node_id}  {node.address}  {state} ({pid})")
    states = partition_states(cluster.bootstrap, settings.topics.all_names())
    if not states:
        print("no hookstream topics yet: `hookstream topics create`")
        return
    print("partition leaders (topic: partition=leader [in-sync replicas]):")
    by_topic: dict[str, list[str]] = {}
    for part in states:
        leader = str(part.leader) if part.leader >= 0 else "NONE"
        isr = ",".join(str(r) for r in part.isr)
        by_topic.setdefault(part.topic, []).append(f"{part.partition}={leader} [{isr}]")
    for topic, parts in by_topic.items():
        print(f"  {topic}: {'  '.join(parts)}")


def _topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.kafka.cluster import resolve_bootstrap
    from hookstream.kafka.topics import create_topics

    outcome = create_topics(
        resolve_bootstrap(settings), settings.topics, settings.kafka_security, fix=args.fix
    )
    for name, state in outcome.items():
        print(f"{state:8} {name}")
    return 0


def _topics_wait(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.kafka.cluster import resolve_bootstrap
    from hookstream.kafka.topics import require_topics

    # Metadata requests only: an init step must never create a topic (auto-creation would make
    # the compacted topics with the wrong cleanup policy).
    require_topics(
        resolve_bootstrap(settings), settings.topics, settings.kafka_security, args.timeout
    )
    print("every topic exists")
    return 0


def _matcher(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.kafka.cluster import resolve_bootstrap
    from hookstream.kafka.topics import require_topics
    from hookstream.matcher.app import run_matcher

    log.info("matcher starting with settings %s", settings.masked())
    bootstrap = resolve_bootstrap(settings)
    require_topics(bootstrap, settings.topics, settings.kafka_security)
    run_matcher(settings, bootstrap)
    return 0


def _sender(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.kafka.cluster import resolve_bootstrap
    from hookstream.kafka.topics import require_topics
    from hookstream.sender.service import serve_sender

    log.info("sender starting with settings %s", settings.masked())
    bootstrap = resolve_bootstrap(settings)
    require_topics(bootstrap, settings.topics, settings.kafka_security)
    serve_sender(settings, bootstrap)
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.cli.demo import run_demo

    return run_demo(settings, once=args.once)


def _events_publish(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.client import HookstreamClient
    from hookstream.records.models import DomainEvent, now_ms

    if args.file:
        with open(args.file, encoding="utf-8") as handle:
            document = json.load(handle)
        events = [
            DomainEvent.model_validate(item)
            for item in (document if isinstance(document, list) else [document])
        ]
    elif args.device_event:
        events = [
            DomainEvent.for_device_event(
                args.device_event, json.loads(args.properties), resource_id=args.id
            )
        ]
    else:
        if not (args.source and args.operation):
            print(
                "hookstream: give --source and --operation, --device-event, or --file",
                file=sys.stderr,
            )
            return 2
        events = [
            DomainEvent(
                event_id=str(uuid.uuid4()),
                source=args.source,
                operation=args.operation,
                resource_id=args.id,
                actor_username=args.user,
                occurred_at=now_ms(),
                properties=json.loads(args.properties),
            )
        ]
    with HookstreamClient.from_settings(settings) as client:
        for event in events:
            client.publish_event(event)
            print(f"published {event.event_id} ({event.source}/{event.operation})")
    return 0


def _status_tail(args: argparse.Namespace, settings: Settings) -> int:
    from hookstream.client import HookstreamClient

    with HookstreamClient.from_settings(settings) as client:
        for status in client.statuses(
            timeout_s=args.idle, webhook_id=args.webhook, from_beginning=not args.new
        ):
            print(
                status.model_dump_json(exclude={"payload"}) if args.json else format_status(status)
            )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command tree; each subcommand's help says what it does."""
    parser = argparse.ArgumentParser(
        prog="hookstream",
        description="Webhook delivery on Apache Kafka. Settings come from HOOKSTREAM_* variables.",
    )
    parser.add_argument("--version", action="version", version=f"hookstream {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_kafka_commands(commands)
    _add_topic_commands(commands)
    _add_service_commands(commands)
    _add_event_commands(commands)
    add_admin_commands(commands)
    return parser


def _add_kafka_commands(commands: Subparsers[argparse.ArgumentParser]) -> None:
    """``kafka start|stop|status``: the local broker or cluster."""
    kafka = commands.add_parser(
        "kafka", help="run a local Kafka broker (KRaft), or a cluster of several"
    )
    kafka_commands = kafka.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = kafka_commands.add_parser(
        "start", help="fetch the jars once, format storage, start and wait until ready"
    )
    start.add_argument(
        "--brokers",
        type=int,
        choices=range(1, 6),
        metavar="N",
        help="run N nodes (broker and controller each, 1-5) as one cluster; default "
        "HOOKSTREAM_LOCAL_KAFKA__BROKERS (1)",
    )
    start.set_defaults(handler=_kafka_start)
    kafka_commands.add_parser("stop", help="stop the local broker or cluster").set_defaults(
        handler=_kafka_stop
    )
    kafka_commands.add_parser(
        "status",
        help="say whether the local broker runs; for a cluster, each broker and the partition "
        "leaders of hookstream's topics",
    ).set_defaults(handler=_kafka_status)


def _add_topic_commands(commands: Subparsers[argparse.ArgumentParser]) -> None:
    """``topics create|wait``."""
    topics = commands.add_parser("topics", help="manage hookstream's topics")
    topic_commands = topics.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = topic_commands.add_parser(
        "create",
        help="create every missing topic; check the existing ones (partitions, replicas, "
        "cleanup policy, retention, min.insync.replicas) and fail naming each difference",
    )
    create.add_argument(
        "--fix",
        action="store_true",
        help="change what Kafka can change: configs, and partitions (only ever added)",
    )
    create.set_defaults(handler=_topics_create)
    wait = topic_commands.add_parser(
        "wait",
        help="wait until every topic exists, never creating one (an init step before the "
        "services); fails on a compacted topic that is not compacted",
    )
    wait.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait before failing (default 600)",
    )
    wait.set_defaults(handler=_topics_wait)


def _add_service_commands(commands: Subparsers[argparse.ArgumentParser]) -> None:
    """``matcher``, ``sender`` and ``demo``: the processes."""
    commands.add_parser("matcher", help="run the Faust matcher and webhook registry").set_defaults(
        handler=_matcher
    )
    commands.add_parser("sender", help="run the delivery sender").set_defaults(handler=_sender)
    demo = commands.add_parser(
        "demo",
        help="start a local broker, the services and a demo receiver; deliver sample events",
    )
    demo.add_argument("--once", action="store_true", help="exit after the sample deliveries")
    demo.set_defaults(handler=_demo)


def _add_event_commands(commands: Subparsers[argparse.ArgumentParser]) -> None:
    """``events publish`` and ``status tail``: trying hookstream from a shell."""
    events = commands.add_parser("events", help="publish domain events (for trying things)")
    event_commands = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    publish = event_commands.add_parser(
        "publish", help="publish one event from flags or a JSON file"
    )
    publish.add_argument("--source", help="collection: items, groups, users, roles, computers, ...")
    publish.add_argument("--operation", help="add, update, delete, signin, ...")
    publish.add_argument("--id", help="id of the resource acted on")
    publish.add_argument("--user", help="user name of who did it")
    publish.add_argument("--device-event", help="a device event name, e.g. ComputerAdded")
    publish.add_argument("--properties", default="{}", help="JSON object of further fields")
    publish.add_argument("--file", help="a JSON file with one event or a list of events")
    publish.set_defaults(handler=_events_publish)

    status = commands.add_parser("status", help="read the status topic")
    status_commands = status.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = status_commands.add_parser("tail", help="print status records as they come")
    tail.add_argument("--webhook", help="only this webhook id")
    tail.add_argument("--new", action="store_true", help="only records written from now on")
    tail.add_argument(
        "--idle", type=float, default=3600.0, help="stop after this many idle seconds"
    )
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.set_defaults(handler=_status_tail)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hookstream`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except (
        ValidationError
    ) as exc:  # named by field and rule, never with the value: it may be secret
        print(f"hookstream: invalid settings: {describe_validation_error(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json_lines=settings.log_format == "json")
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except HookstreamError as exc:
        print(f"hookstream: {exc}", file=sys.stderr)
        return 1
    except (kafka.errors.KafkaError, aiokafka.errors.KafkaError) as exc:
        print(
            f"hookstream: Kafka refused or did not answer: {exc!r}; check "
            f"HOOKSTREAM_KAFKA_BOOTSTRAP ({settings.kafka_bootstrap or 'the local broker'}) "
            f"and HOOKSTREAM_KAFKA_SECURITY__*",
            file=sys.stderr,
        )
        return 1
    except ValueError as exc:  # malformed JSON or a model's validation error: the user's input
        print(f"hookstream: invalid input: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
