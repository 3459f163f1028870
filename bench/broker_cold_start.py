"""Cold start of the local Kafka broker, and the cost of its first download."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from hookstream.localkafka.broker import LocalBroker
from hookstream.localkafka.jars import _package_file, fetch_jars
from hookstream.settings import LocalKafkaSettings


def _size_mb(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6


def start_times(runs: int) -> list[float]:
    """`LocalBroker.start()` with the jars cached and fresh storage (format included)."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as workdir:
            broker = LocalBroker(
                LocalKafkaSettings(port=0, controller_port=0), workdir=Path(workdir)
            )
            started = time.perf_counter()
            broker.start()
            times.append(time.perf_counter() - started)
            broker.stop()
    return times


def first_download(fresh_maven_repo: bool) -> dict[str, float]:
    """fetch_jars into an empty home; optionally with an empty Maven repository too."""
    with tempfile.TemporaryDirectory() as home:
        settings = LocalKafkaSettings(home=Path(home))
        started = time.perf_counter()
        if not fresh_maven_repo:
            libs = fetch_jars(settings)
            return {"seconds": time.perf_counter() - started, "jars_mb": _size_mb(libs)}
        repo = Path(home) / "m2"
        libs = Path(home) / "libs"
        subprocess.run(  # noqa: S603 - the same command fetch_jars runs, with its own repository
            [
                shutil.which("mvn") or "mvn",
                "-q",
                "-B",
                "-f",
                str(_package_file("pom.xml")),
                f"-Dkafka.version={settings.version}",
                f"-Dmaven.repo.local={repo}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
            ],
            check=True,
            capture_output=True,
        )
        return {
            "seconds": time.perf_counter() - started,
            "jars_mb": _size_mb(libs),
            "downloaded_mb": _size_mb(repo),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times = start_times(args.runs)
    cached = first_download(fresh_maven_repo=False)
    fresh = first_download(fresh_maven_repo=True)
    print(
        f"broker start (jars cached, fresh storage): {', '.join(f'{t:.1f} s' for t in times)}; "
        f"median {statistics.median(times):.1f} s"
    )
    print(
        f"first fetch, Maven cache warm: {cached['seconds']:.1f} s, "
        f"{cached['jars_mb']:.0f} MB of jars"
    )
    print(
        f"first fetch, empty Maven repository: {fresh['seconds']:.1f} s, "
        f"{fresh['downloaded_mb']:.0f} MB downloaded, {fresh['jars_mb']:.0f} MB of jars"
    )
    print(
        json.dumps(
            {"benchmark": "broker", "start_s": times, "fetch_warm": cached, "fetch_fresh": fresh}
        )
    )


if __name__ == "__main__":
    main()
