"""The matcher's live views (webhook configs, event types) and its ops endpoints, as one object:
started and caught up before the consumer joins the group, fresh enough for each event, and a
view that stops following its topic is reported so that the worker can stop."""

from __future__ import annotations

import asyncio

from hookstream.kafka.follower import CompactedFeed
from hookstream.ops import OpsServer
from hookstream.settings import Settings
from hookstream.views.catalog import CatalogFeed, EventCatalog
from hookstream.views.directory import WebhookDirectory
from hookstream.views.directory_feed import DirectoryFeed


class MatcherViews:
    """The directory and the catalog the matcher routes with, and the feeds that keep them."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.catalog = EventCatalog()
        self.directory = WebhookDirectory(self.catalog.lenient(), settings.directory_cache_size)
        self.directory_feed = DirectoryFeed(
            self.directory,
            bootstrap,
            settings.topics.webhooks,
            f"{settings.app_id}-matcher-directory",
            settings.kafka_security,
        )
        self.catalog_feed = CatalogFeed(
            self.catalog,
            bootstrap,
            settings.topics.event_types,
            f"{settings.app_id}-matcher-catalog",
            settings.kafka_security,
            on_change=self.directory.refresh,
        )
        self._feeds: tuple[CompactedFeed, ...] = (self.directory_feed, self.catalog_feed)
        self._ready_timeout_s = settings.matcher.ready_timeout_s
        self.ops = OpsServer(
            settings.ops.host,
            settings.ops.matcher_port,
            ready=self.ready,
            problems=self.problems,
            views={"webhooks": self.directory_feed, "event_types": self.catalog_feed},
        )

    def ready(self) -> bool:
        """Both views have read their topics to the end once (what /readyz reports)."""
        return all(feed.ready.is_set() for feed in self._feeds)

    def problems(self) -> list[str]:
        """What is wrong with the views now, for /readyz."""
        return [problem for feed in self._feeds if (problem := feed.problem())]

    async def start(self) -> None:
        """Ops endpoints first (so /healthz answers while the views catch up), then the views."""
        await self.ops.start()
        await self.catalog_feed.start()
        await self.directory_feed.start()

    async def wait_ready(self) -> None:
        """Until both views have caught up; raises after ``ready_timeout_s`` each."""
        await self.catalog_feed.wait_ready(self._ready_timeout_s)
        await self.directory_feed.wait_ready(self._ready_timeout_s)

    async def fresh_since(self, moment: float) -> None:
        """Both views hold what their topics had at ``moment`` (a webhook created, an event
        type declared just before an event was published is used for it)."""
        directory, catalog = self.directory_feed, self.catalog_feed
        if min(directory.fresh_at, catalog.fresh_at) < moment:
            await asyncio.gather(catalog.fresh_since(moment), directory.fresh_since(moment))

    async def first_failure(self) -> BaseException:
        """Wait until a view stops following its topic (a wrong secrets key, a bug): routing on
        with stale configs would be wrong, so the caller stops the worker with this error."""
        waits = [asyncio.ensure_future(feed.failed.wait()) for feed in self._feeds]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        failed = next(feed for feed in self._feeds if feed.failed.is_set())
        return failed.failure or RuntimeError(failed.problem())

    async def stop(self) -> None:
        """Stop the feeds, then the ops endpoints."""
        await self.directory_feed.stop()
        await self.catalog_feed.stop()
        await self.ops.stop()
