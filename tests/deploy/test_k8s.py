"""k8s/: renders, validates against the Kubernetes schemas, and matches what the services do."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from deploy.deployfiles import (
    K8S,
    KUBERNETES_VERSIONS,
    LISTENS,
    SERVICE_COMMANDS,
    admin_paths,
    container_env,
    final_stage_value,
    labels_match,
    named_port,
    of_kind,
    ops_answers,
    pod_spec,
    render,
    secret_data,
    settings_from_env,
    unknown_variables,
    validate_core,
    walk,
    with_components,
)
from hookstream import __version__
from hookstream.core.errors import ConfigurationError
from hookstream.matcher.app import create_app
from hookstream.records.secretbox import SecretBox
from hookstream.settings import Settings

#: Stands in for a Secret value the base does not render (the operator creates the Secret).
STAND_IN_KEY = Fernet.generate_key().decode()


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_base_and_overlay_validate_offline(
    version: str, base: list[dict[str, Any]], overlay: list[dict[str, Any]]
) -> None:
    validate_core(base, version)
    validate_core(overlay, version)


def test_validation_catches_a_wrong_field(base: list[dict[str, Any]]) -> None:
    import kubernetes_validate

    deployment = dict(of_kind(base, "Deployment")["hookstream-sender"])
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def _kinds(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted(
        (o["kind"], re.sub(r"-[a-z0-9]{10}$", "", o["metadata"]["name"])) for o in objects
    )


def test_the_base_holds_every_piece(base: list[dict[str, Any]]) -> None:
    assert _kinds(base) == [
        ("ConfigMap", "hookstream"),
        ("Deployment", "hookstream-admin"),
        ("Deployment", "hookstream-matcher"),
        ("Deployment", "hookstream-sender"),
        ("Job", "hookstream-topics"),
        ("NetworkPolicy", "hookstream-admin-ingress"),
        ("NetworkPolicy", "hookstream-default-deny"),
        ("NetworkPolicy", "hookstream-dns"),
        ("NetworkPolicy", "hookstream-kafka"),
        ("NetworkPolicy", "hookstream-metrics"),
        ("NetworkPolicy", "hookstream-receivers"),
        ("PodDisruptionBudget", "hookstream-admin"),
        ("PodDisruptionBudget", "hookstream-matcher"),
        ("PodDisruptionBudget", "hookstream-sender"),
        ("Service", "hookstream-admin"),
        ("ServiceAccount", "hookstream"),
    ]
    for obj in base:
        assert obj["metadata"]["namespace"] == "hookstream", obj["metadata"]["name"]


def test_the_namespace_is_kept_apart_and_restricted() -> None:
    # Deleting an installation (kubectl delete -k) must not delete the Secret's namespace.
    (namespace,) = render("namespace")
    assert namespace["kind"] == "Namespace" and namespace["metadata"]["name"] == "hookstream"
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    for version in KUBERNETES_VERSIONS:
        validate_core([namespace], version)


def test_the_overlay_adds_the_secret_and_every_reference_resolves(
    overlay: list[dict[str, Any]],
) -> None:
    assert ("Secret", "hookstream-secrets") in _kinds(overlay)
    config_maps, secrets = of_kind(overlay, "ConfigMap"), of_kind(overlay, "Secret")
    for value in walk(overlay):
        if not isinstance(value, dict):
            continue
        if "configMapRef" in value:
            assert value["configMapRef"]["name"] in config_maps
        if "secretKeyRef" in value:
            ref = value["secretKeyRef"]
            assert ref["key"] in secret_data(secrets[ref["name"]]), ref


def test_no_real_secret_is_committed(overlay: list[dict[str, Any]]) -> None:
    (secret,) = of_kind(overlay, "Secret").values()
    data = secret_data(secret)
    assert set(data) == {"HOOKSTREAM_SECURITY__SECRETS_KEYS", "HOOKSTREAM_ADMIN__TOKENS"}
    for value in data.values():
        assert value.startswith("REPLACE-ME"), value
    # The placeholder key cannot be used by accident: hookstream refuses it.
    keys = settings_from_env(data).security.secrets_keys
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        SecretBox([key.get_secret_value().encode() for key in keys])


def _workloads(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(service, pod spec, container) of every Deployment and Job."""
    found = []
    for kind in ("Deployment", "Job"):
        for workload in of_kind(objects, kind).values():
            spec = pod_spec(workload)
            for container in spec["containers"]:
                found.append((container["args"][0], spec, container))
    return found


def _settings(container: dict[str, Any], objects: list[dict[str, Any]]) -> Settings:
    return settings_from_env(container_env(container, objects, STAND_IN_KEY))


def test_every_variable_is_a_setting_and_every_value_parses(
    base: list[dict[str, Any]], overlay: list[dict[str, Any]]
) -> None:
    for objects in (base, overlay):
        names: set[str] = set()
        for config_map in of_kind(objects, "ConfigMap").values():
            names |= set(config_map["data"])
        for secret in of_kind(objects, "Secret").values():
            names |= set(secret_data(secret))
        for _service, _spec, container in _workloads(objects):
            names |= {entry["name"] for entry in container.get("env", [])}
            assert not [n for n in container_env(container, objects, "") if n not in names]
            settings = _settings(container, objects)
            assert not settings.delivery.allow_plain_http, "payload URLs must be https"
            assert settings.security.allow_networks == []
        assert names and unknown_variables(names) == []
        assert all(name.startswith("HOOKSTREAM_") for name in names), names


def test_the_services_read_their_secrets(overlay: list[dict[str, Any]]) -> None:
    for service, _spec, container in _workloads(overlay):
        env = container_env(container, overlay, "")
        if service in ("matcher", "sender", "admin"):
            assert env.get("HOOKSTREAM_SECURITY__SECRETS_KEYS"), service
        assert bool(env.get("HOOKSTREAM_ADMIN__TOKENS")) == (service == "admin"), service


@pytest.fixture(scope="module")
def ops_paths_behaviour(base: list[dict[str, Any]]) -> dict[str, Any]:
    paths = set()
    for deployment in of_kind(base, "Deployment").values():
        for container in pod_spec(deployment)["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                paths.add(container[probe]["httpGet"]["path"])
        paths.add(
            deployment["spec"]["template"]["metadata"]
            .get("annotations", {})
            .get("prometheus.io/path", "/metrics")
        )
    return ops_answers(paths)


def test_probes_point_at_what_each_service_serves(
    base: list[dict[str, Any]], ops_paths_behaviour: dict[str, Any]
) -> None:
    deployments = of_kind(base, "Deployment")
    served = {service for service, _, _ in _workloads(base)}
    assert {"matcher", "sender", "admin"} <= served
    for deployment in deployments.values():
        (container,) = pod_spec(deployment)["containers"]
        service = container["args"][0]
        host, port = LISTENS[service](_settings(container, base))
        assert host == "0.0.0.0", f"{service} must listen on the pod's address"
        probes = {
            kind: container[kind]["httpGet"]
            for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        for kind, get in probes.items():
            assert named_port(container, get["port"]) == port, f"{service} {kind} port"
        if service == "admin":
            # The admin API's routes, as its app defines them; the live test checks answers.
            routes = admin_paths()
            assert {get["path"] for get in probes.values()} <= routes
            assert probes["readinessProbe"]["path"] != probes["livenessProbe"]["path"]
            continue
        # Liveness: 200 while the process runs, even before it is ready (or starts would kill
        # it). Readiness, and startup (which holds liveness off until then): 503 until the
        # service has caught up, then 200.
        answer = ops_paths_behaviour[probes["livenessProbe"]["path"]]
        assert (answer.status_when_starting, answer.status_when_ready) == (200, 200)
        for kind in ("startupProbe", "readinessProbe"):
            answer = ops_paths_behaviour[probes[kind]["path"]]
            assert (answer.status_when_starting, answer.status_when_ready) == (503, 200), kind


def test_prometheus_scrapes_every_service_that_serves_metrics(
    base: list[dict[str, Any]], ops_paths_behaviour: dict[str, Any]
) -> None:
    for deployment in of_kind(base, "Deployment").values():
        (container,) = pod_spec(deployment)["containers"]
        service = container["args"][0]
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        serves_metrics = service != "admin" or "/metrics" in admin_paths()
        assert (annotations.get("prometheus.io/scrape") == "true") == serves_metrics, service
        if not serves_metrics:
            continue
        _host, port = LISTENS[service](_settings(container, base))
        assert int(annotations["prometheus.io/port"]) == port, service
        answer = ops_paths_behaviour[annotations["prometheus.io/path"]]
        assert answer.status_when_ready == 200
        assert answer.content_type.startswith("text/plain; version="), answer


def test_pods_run_as_the_image_user_on_a_read_only_root(base: list[dict[str, Any]]) -> None:
    uid = int(final_stage_value("USER")[0].split(":")[0])
    for service, spec, container in _workloads(base):
        assert spec["securityContext"]["runAsNonRoot"] is True, service
        assert spec["securityContext"]["runAsUser"] == uid, service
        assert spec["automountServiceAccountToken"] is False, service
        assert spec["enableServiceLinks"] is False, service
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, service
        assert context["allowPrivilegeEscalation"] is False, service
        assert context["capabilities"]["drop"] == ["ALL"], service
        scratch = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        writable = [Path(m["mountPath"]) for m in container["volumeMounts"] if m["name"] in scratch]
        # The container's /tmp, not one of this machine.
        assert Path("/tmp") in writable, f"{service}: Python needs a writable /tmp"  # noqa: S108
        data_dir = _settings(container, base).matcher.data_dir
        assert any(data_dir.is_relative_to(w) for w in writable), f"{service}: {data_dir}"


def test_every_container_has_requests_and_limits(base: list[dict[str, Any]]) -> None:
    for service, _spec, container in _workloads(base):
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) == {"cpu", "memory"}, (service, bound)


def test_disruption_budgets_and_the_service_select_the_right_pods(
    base: list[dict[str, Any]],
) -> None:
    deployments = of_kind(base, "Deployment")
    labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    for name, budget in of_kind(base, "PodDisruptionBudget").items():
        selected = [d for d, pod in labels.items() if labels_match(budget["spec"]["selector"], pod)]
        assert selected == [name], f"PodDisruptionBudget {name} selects {selected}"
        assert deployments[name]["spec"]["replicas"] > budget["spec"]["maxUnavailable"]
    assert set(of_kind(base, "PodDisruptionBudget")) == set(deployments)
    service = of_kind(base, "Service")["hookstream-admin"]
    selected = [
        d
        for d, pod in labels.items()
        if labels_match({"matchLabels": service["spec"]["selector"]}, pod)
    ]
    assert selected == ["hookstream-admin"]
    (container,) = pod_spec(deployments["hookstream-admin"])["containers"]
    (port,) = service["spec"]["ports"]
    _host, admin_port = LISTENS["admin"](_settings(container, base))
    assert named_port(container, port["targetPort"]) == admin_port


def test_replicas_stay_within_the_partition_count(
    base: list[dict[str, Any]], overlay: list[dict[str, Any]]
) -> None:
    for objects in (base, overlay):
        for deployment in of_kind(objects, "Deployment").values():
            (container,) = pod_spec(deployment)["containers"]
            partitions = _settings(container, objects).topics.partitions
            if container["args"][0] in ("matcher", "sender"):
                assert deployment["spec"]["replicas"] <= partitions


def test_one_image_at_the_package_version(
    base: list[dict[str, Any]], overlay: list[dict[str, Any]]
) -> None:
    assert {c["image"] for _, _, c in _workloads(base)} == {f"hookstream:{__version__}"}
    (image,) = {c["image"] for _, _, c in _workloads(overlay)}
    assert image.endswith(f"/hookstream:{__version__}")


def test_every_service_command_runs_somewhere(base: list[dict[str, Any]]) -> None:
    commands = [container["args"] for _, _, container in _workloads(base)]
    assert sorted(commands) == sorted(SERVICE_COMMANDS.values())


def test_optional_examples_stay_out_of_the_base(base: list[dict[str, Any]]) -> None:
    text = (K8S / "base" / "kustomization.yaml").read_text()
    assert "optional" not in text and "components" not in text
    kinds = {o["kind"] for o in base}
    assert not kinds & {"ScaledObject", "PodMonitor", "ServiceMonitor", "PrometheusRule"}


def test_keda_scales_each_consumer_group_up_to_the_partitions(
    base: list[dict[str, Any]], tmp_path: Path
) -> None:
    objects = with_components(tmp_path, "keda")
    scaled = of_kind(objects, "ScaledObject")
    deployments = of_kind(base, "Deployment")
    assert set(scaled) == {"hookstream-matcher", "hookstream-sender"}
    authentications = of_kind(objects, "TriggerAuthentication")
    for name, scaled_object in scaled.items():
        spec = scaled_object["spec"]
        target = deployments[spec["scaleTargetRef"]["name"]]
        # KEDA owns the replica count: a `replicas` in the manifest would be reset at every apply.
        assert "replicas" not in of_kind(objects, "Deployment")[target["metadata"]["name"]]["spec"]
        (container,) = pod_spec(target)["containers"]
        service = container["args"][0]
        settings = _settings(container, base)
        assert spec["maxReplicaCount"] == settings.topics.partitions, name
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["authenticationRef"]["name"] in authentications
        meta = trigger["metadata"]
        assert int(meta["activationLagThreshold"]) < int(meta["lagThreshold"])
        assert meta["bootstrapServers"] == settings.kafka_bootstrap
        if service == "matcher":
            # The matcher's group is its Faust app id.
            matcher_settings = settings.model_copy(
                update={"matcher": settings.matcher.model_copy(update={"data_dir": tmp_path})}
            )
            assert meta["consumerGroup"] == create_app(matcher_settings, "kafka:9092").conf.id
            assert meta["topic"] in settings.topics.events
        else:
            # The live test (test_deployed_services) sees this group join the broker.
            assert meta["consumerGroup"] == f"{settings.app_id}-sender"
            assert meta["topic"] == settings.topics.deliveries
    for version in KUBERNETES_VERSIONS:
        # KEDA's own kinds are custom resources, outside the Kubernetes schemas.
        validate_core([o for o in objects if not o["apiVersion"].startswith("keda.sh/")], version)


def test_the_pod_monitor_scrapes_every_service(
    base: list[dict[str, Any]], ops_paths_behaviour: dict[str, Any]
) -> None:
    (monitor,) = of_kind(render("optional/prometheus-operator"), "PodMonitor").values()
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    scraped = []
    for deployment in of_kind(base, "Deployment").values():
        pod = deployment["spec"]["template"]["metadata"]["labels"]
        if labels_match(monitor["spec"]["selector"], pod):
            (container,) = pod_spec(deployment)["containers"]
            service = container["args"][0]
            _host, port = LISTENS[service](_settings(container, base))
            names = {entry.get("name") for entry in container.get("ports", [])}
            (endpoint,) = [e for e in endpoints if e["port"] in names]  # exactly one scrapes it
            assert named_port(container, endpoint["port"]) == port, service
            assert endpoint["path"] == "/metrics", service
            scraped.append(service)
    assert sorted(scraped) == ["admin", "matcher", "sender"]
    assert ops_paths_behaviour["/metrics"].status_when_ready == 200
