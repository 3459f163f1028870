"""The local broker's jars are cached apart from its storage: a second broker (another
HOOKSTREAM_LOCAL_KAFKA__HOME) uses the jars already fetched instead of fetching them again."""

from __future__ import annotations

from pathlib import Path

from hookstream.localkafka import jars
from hookstream.settings import LocalKafkaSettings


def test_brokers_with_their_own_storage_share_one_jar_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    libs = cache / "kafka-4.0.2" / "libs"
    libs.mkdir(parents=True)
    (libs / jars._COMPLETE_MARKER).write_text("4.0.2")
    for home in ("one", "two"):
        settings = LocalKafkaSettings(home=tmp_path / home, jars_dir=cache, version="4.0.2")
        # Already complete in the cache: no Maven run, the same folder for both homes.
        assert jars.fetch_jars(settings) == libs
        assert not (tmp_path / home).exists()
