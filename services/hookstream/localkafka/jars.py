"""Apache Kafka's jars for the local broker, fetched once through Maven into a cache shared by
every local broker (its storage is apart, in each broker's home)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from hookstream.core.errors import ConfigurationError, LocalBrokerError
from hookstream.settings import LocalKafkaSettings

log = logging.getLogger(__name__)

#: Written last into a folder of jars: a folder without it is a fetch that did not finish.
_COMPLETE_MARKER = ".complete"


def _package_file(name: str) -> Path:
    return Path(str(resources.files("hookstream.localkafka").joinpath(name)))


def _require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigurationError(
            f"'{name}' was not found on PATH; {why}. Install it (e.g. `apt-get install "
            f"openjdk-17-jre-headless maven`) or set HOOKSTREAM_KAFKA_BOOTSTRAP to use an "
            f"existing cluster."
        )
    return path


def fetch_jars(settings: LocalKafkaSettings) -> Path:
    """Download the broker jars once into the cache and return their folder."""
    return _fetch(settings, "pom.xml", "libs", "kafka_2.13-*.jar")


def fetch_tools(settings: LocalKafkaSettings) -> Path:
    """Download Kafka's command-line tools (e.g. ``org.apache.kafka.tools.ConsoleProducer``)
    once into the cache and return their folder, a class path of its own beside the broker's."""
    return _fetch(settings, "tools-pom.xml", "tools", "kafka-tools-*.jar")


def _fetch(settings: LocalKafkaSettings, pom: str, folder: str, expected: str) -> Path:
    libs = settings.jars_dir / f"kafka-{settings.version}" / folder
    if (libs / _COMPLETE_MARKER).exists():
        return libs
    mvn = _require_tool("mvn", "Maven fetches the Kafka jars from Maven Central")
    if libs.exists():
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    log.info("fetching Apache Kafka %s jars (%s) into %s", settings.version, pom, libs)
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(_package_file(pom)),
        f"-Dkafka.version={settings.version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        shutil.rmtree(libs, ignore_errors=True)
        raise LocalBrokerError(
            f"Maven could not fetch Apache Kafka {settings.version} (exit {done.returncode}):\n"
            f"{(done.stdout + done.stderr)[-2000:]}"
        )
    if not any(libs.glob(expected)):
        raise LocalBrokerError(f"Maven finished but no {expected} is in {libs}")
    (libs / _COMPLETE_MARKER).write_text(settings.version)
    return libs
