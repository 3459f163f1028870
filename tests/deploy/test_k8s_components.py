"""The kustomize components an installation adds to the base: a secured Kafka connection
(kafka-sasl, kafka-tls), Strimzi's topics and user instead of the topics Job, and each of them
rendered with the others and validated."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from cryptography.fernet import Fernet

from deploy.crds import validate_custom
from deploy.deployfiles import (
    KUBERNETES_VERSIONS,
    container_env,
    is_custom,
    of_kind,
    pod_spec,
    render,
    settings_from_env,
    validate_core,
    with_components,
)
from hookstream.kafka.topics import topic_specs
from hookstream.matcher.app import create_app
from hookstream.settings import KafkaSecuritySettings, Settings

#: Stands in for the values of Secrets an installation provides (never rendered).
STAND_IN = Fernet.generate_key().decode()

#: The Secrets the security components read, in the hookstream namespace.
USER_SECRET = "hookstream-kafka-user"
CA_SECRET = "hookstream-kafka-ca"

#: The API group of Strimzi's resources.
STRIMZI = "kafka.strimzi.io"

#: Every combination an installation may list, in the documented order (keda before a
#: security component, whose patches complete its TriggerAuthentication).
COMBINATIONS = [
    ("kafka-sasl",),
    ("kafka-tls",),
    ("keda", "kafka-sasl"),
    ("keda", "kafka-tls"),
    ("strimzi",),
    ("strimzi", "kafka-sasl"),
    ("strimzi", "keda", "kafka-sasl"),
    ("strimzi", "keda", "kafka-tls"),
]


def _containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload/container, container, pod spec) of every container that talks to Kafka."""
    found = []
    for kind in ("Deployment", "Job"):
        for name, workload in of_kind(objects, kind).items():
            spec = pod_spec(workload)
            for container in spec.get("initContainers", []) + spec["containers"]:
                found.append((f"{name}/{container['name']}", container, spec))
    return found


def _settings(container: dict[str, Any], objects: list[dict[str, Any]]) -> Settings:
    return settings_from_env(container_env(container, objects, STAND_IN))


def _secret_file(path: Path, container: dict[str, Any], spec: dict[str, Any]) -> tuple[str, str]:
    """The (Secret, key) a file of the container comes from; fails if nothing mounts it."""
    file = PurePosixPath(path)
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        if PurePosixPath(mount["mountPath"]) != file.parent:
            continue
        secret = volumes[mount["name"]]["secret"]
        (item,) = [i for i in secret["items"] if i["path"] == file.name]
        assert mount.get("readOnly") is True
        return secret["secretName"], item["key"]
    raise AssertionError(f"{container['name']}: nothing mounts {path}")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], Any]:
    folder = tmp_path_factory.mktemp("components")
    return {names: with_components(folder, *names) for names in COMBINATIONS}


@pytest.mark.parametrize("names", COMBINATIONS, ids="+".join)
def test_every_combination_renders_and_validates(
    names: tuple[str, ...], rendered: dict[tuple[str, ...], Any]
) -> None:
    objects = rendered[names]
    for version in KUBERNETES_VERSIONS:
        validate_core(objects, version)
    custom = [o for o in objects if is_custom(o)]
    # Strimzi publishes its CRDs with its Java operator, not as a Go module: its resources are
    # checked field by field against the code below instead.
    checked = validate_custom(objects, skip_groups=(STRIMZI,))
    assert checked == len([o for o in custom if not o["apiVersion"].startswith(STRIMZI)])
    assert checked > 0 or "keda" not in names


def test_the_other_custom_resources_match_their_crds(tmp_path: Path) -> None:
    objects = with_components(tmp_path, "keda", "monitoring") + render(
        "optional/prometheus-operator"
    )
    kinds = {o["kind"] for o in objects if is_custom(o)}
    assert kinds == {"ScaledObject", "TriggerAuthentication", "PrometheusRule", "PodMonitor"}
    assert validate_custom(objects) == 5


def test_custom_resource_validation_catches_a_misspelt_field(tmp_path: Path) -> None:
    (scaled, *_) = of_kind(with_components(tmp_path, "keda"), "ScaledObject").values()
    scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")
    with pytest.raises(AssertionError, match="maxReplicas"):
        validate_custom([scaled])


@pytest.mark.parametrize(
    "names", [n for n in COMBINATIONS if "kafka-sasl" in n or "kafka-tls" in n], ids="+".join
)
def test_every_process_connects_with_the_same_secured_settings(
    names: tuple[str, ...], rendered: dict[tuple[str, ...], Any]
) -> None:
    objects = rendered[names]
    sasl = "kafka-sasl" in names
    containers = _containers(objects)
    # The three services with their init containers, and the topics Job unless Strimzi replaces it.
    assert len(containers) == (6 if "strimzi" in names else 7)
    for what, container, spec in containers:
        security = _settings(container, objects).kafka_security
        assert security.protocol == ("SASL_SSL" if sasl else "SSL"), what
        assert security.ssl_cafile is not None, what
        assert _secret_file(security.ssl_cafile, container, spec) == (CA_SECRET, "ca.crt"), what
        assert security.ssl_check_hostname, what
        if sasl:
            assert security.sasl_mechanism == "SCRAM-SHA-512", what
            (password,) = [
                e
                for e in container["env"]
                if e["name"] == "HOOKSTREAM_KAFKA_SECURITY__SASL_PASSWORD"
            ]
            ref = password["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == (USER_SECRET, "password"), what
        else:
            assert security.ssl_certfile is not None and security.ssl_keyfile is not None
            assert _secret_file(security.ssl_certfile, container, spec) == (
                USER_SECRET,
                "user.crt",
            )
            assert _secret_file(security.ssl_keyfile, container, spec) == (USER_SECRET, "user.key")
            # The private key is readable by the pod's group only, which the pod must have.
            (volume,) = [v for v in spec["volumes"] if v["name"] == "kafka-user"]
            assert volume["secret"]["defaultMode"] == 0o440
            assert spec["securityContext"]["fsGroup"] == 10001, what
        assert _settings(container, objects).kafka_bootstrap.endswith(":9093"), what  # type: ignore[union-attr]


@pytest.mark.parametrize("names", [n for n in COMBINATIONS if "keda" in n], ids="+".join)
def test_keda_connects_like_the_services(
    names: tuple[str, ...], rendered: dict[tuple[str, ...], Any]
) -> None:
    objects = rendered[names]
    (auth,) = of_kind(objects, "TriggerAuthentication").values()
    spec = auth["spec"]
    from_secrets = {r["parameter"]: (r["name"], r["key"]) for r in spec.get("secretTargetRef", [])}
    assert from_secrets["ca"] == (CA_SECRET, "ca.crt")
    deployments = of_kind(objects, "Deployment")
    for scaled in of_kind(objects, "ScaledObject").values():
        (container,) = pod_spec(deployments[scaled["spec"]["scaleTargetRef"]["name"]])["containers"]
        settings = _settings(container, objects)
        (trigger,) = scaled["spec"]["triggers"]
        meta = trigger["metadata"]
        assert meta["bootstrapServers"] == settings.kafka_bootstrap
        assert meta["tls"] == "enable"
        if "kafka-sasl" in names:
            assert meta["sasl"] == "scram_sha512"
            # KEDA resolves these in the environment of the container it scales.
            env = container_env(container, objects, STAND_IN)
            from_env = {r["parameter"]: r["name"] for r in spec["env"]}
            assert set(from_env) == {"username", "password"}
            assert env[from_env["username"]] == settings.kafka_security.sasl_username
            assert from_env["password"] == "HOOKSTREAM_KAFKA_SECURITY__SASL_PASSWORD"
            assert from_env["password"] in {e["name"] for e in container["env"]}
        else:
            assert "sasl" not in meta
            assert from_secrets["cert"] == (USER_SECRET, "user.crt")
            assert from_secrets["key"] == (USER_SECRET, "user.key")


def test_keda_alone_has_nothing_to_authenticate(tmp_path: Path) -> None:
    (auth,) = of_kind(with_components(tmp_path, "keda"), "TriggerAuthentication").values()
    assert auth["spec"] == {"secretTargetRef": []}


# --- Strimzi ------------------------------------------------------------------------------


def _strimzi(rendered: dict[tuple[str, ...], Any]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = rendered[("strimzi", "kafka-sasl")]
    return objects


def _base_settings(objects: list[dict[str, Any]]) -> Settings:
    (container,) = pod_spec(of_kind(objects, "Deployment")["hookstream-sender"])["containers"]
    return _settings(container, objects)


def test_strimzi_topics_are_what_topics_create_makes(
    rendered: dict[tuple[str, ...], Any],
) -> None:
    objects = _strimzi(rendered)
    assert "Job" not in {o["kind"] for o in objects}
    settings = _base_settings(objects)
    topics = of_kind(objects, "KafkaTopic")
    wanted = {spec.name: spec for spec in topic_specs(settings.topics)}
    assert {t["spec"]["topicName"] for t in topics.values()} == set(wanted)
    for name, topic in topics.items():
        spec = topic["spec"]
        assert name == spec["topicName"]
        assert spec["partitions"] == wanted[name].partitions, name
        assert spec["replicas"] == settings.topics.replication_factor, name
        assert {k: str(v) for k, v in spec["config"].items()} == wanted[name].configs, name


def test_strimzi_user_has_exactly_the_rights_hookstream_uses(
    rendered: dict[tuple[str, ...], Any], tmp_path: Path
) -> None:
    objects = _strimzi(rendered)
    settings = _base_settings(objects)
    (user,) = of_kind(objects, "KafkaUser").values()
    # The KafkaUser's Secret (named after it) is the one kafka-sasl reads, and its name is the
    # user name the services log in with.
    assert user["metadata"]["name"] == USER_SECRET
    assert settings.kafka_security.sasl_username == USER_SECRET
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    acls = user["spec"]["authorization"]["acls"]
    topic_rules = [a for a in acls if a["resource"]["type"] == "topic"]
    (topic_rule,) = topic_rules
    prefix = topic_rule["resource"]["name"]
    assert topic_rule["resource"]["patternType"] == "prefix"
    assert all(spec.name.startswith(prefix) for spec in topic_specs(settings.topics))
    # No Create: KafkaTopic resources make the topics, and the Job that would create them is gone.
    assert set(topic_rule["operations"]) == {"Describe", "DescribeConfigs", "Read", "Write"}
    groups = {
        a["resource"]["name"]: a["operations"] for a in acls if a["resource"]["type"] == "group"
    }
    matcher = settings.model_copy(
        update={
            "matcher": settings.matcher.model_copy(update={"data_dir": tmp_path}),
            # The group does not depend on the connection; the CA file exists only in the pod.
            "kafka_security": KafkaSecuritySettings(),
        }
    )
    # The matcher's group is its Faust app id; the sender's is the one open_sender joins (the live
    # test, test_deployed_services, sees it join the broker).
    assert set(groups) == {create_app(matcher, "kafka:9092").conf.id, f"{settings.app_id}-sender"}
    assert all(set(operations) == {"Describe", "Read"} for operations in groups.values())
    assert {a["resource"]["type"] for a in acls} == {"topic", "group"}
    clusters = {
        o["metadata"]["labels"]["strimzi.io/cluster"]
        for o in [user, *of_kind(objects, "KafkaTopic").values()]
    }
    assert clusters == {"my-cluster"}
