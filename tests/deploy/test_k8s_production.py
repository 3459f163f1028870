"""k8s/ as a platform engineer reviews it: sizing, start order, shutdown, probes, identity and
the network policies."""

from __future__ import annotations

import ipaddress
from typing import Any

from deploy.deployfiles import (
    COMMIT_MARGIN_S,
    handler_for,
    labels_match,
    longest_attempt_s,
    of_kind,
    pod_spec,
    render,
)
from hookstream.cli.main import _topics_wait

#: Memory each process measured at its peak (bench/sizing.py, 100,000 webhooks and, for the
#: admin API, 100,000 retained deliveries), in MiB; docs/operations.md "Sizing" has the table.
MEASURED_PEAK_MIB = {"matcher": 195, "sender": 178, "admin": 1186}
#: Headroom over the measured peak that the limits must leave.
HEADROOM = 1.25


def _mebibytes(quantity: str) -> float:
    units = {"Mi": 1.0, "Gi": 1024.0}
    return float(quantity[:-2]) * units[quantity[-2:]]


def _cores(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each Deployment by the service its container runs."""
    found = {}
    for deployment in of_kind(objects, "Deployment").values():
        (container,) = pod_spec(deployment)["containers"]
        found[container["args"][0]] = deployment
    return found


def _all_containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for kind in ("Deployment", "Job"):
        for name, workload in of_kind(objects, kind).items():
            spec = pod_spec(workload)
            for container in spec.get("initContainers", []) + spec["containers"]:
                found.append((f"{name}/{container['name']}", container))
    return found


def test_memory_is_requested_as_limited_and_covers_the_measured_peak(
    base: list[dict[str, Any]],
) -> None:
    for name, container in _all_containers(base):
        resources = container["resources"]
        # A request below the limit lets a node overcommit memory: an OOM kill under pressure.
        assert resources["requests"]["memory"] == resources["limits"]["memory"], name
    for service, deployment in _deployments(base).items():
        (container,) = pod_spec(deployment)["containers"]
        limit = _mebibytes(container["resources"]["limits"]["memory"])
        assert limit >= MEASURED_PEAK_MIB[service] * HEADROOM, (service, limit)


def test_a_sender_requests_about_a_core(base: list[dict[str, Any]]) -> None:
    # One sender uses most of a core at full load (docs/benchmarks.md); less would throttle it.
    (container,) = pod_spec(_deployments(base)["sender"])["containers"]
    assert _cores(container["resources"]["requests"]["cpu"]) >= 1.0
    for service, deployment in _deployments(base).items():
        (container,) = pod_spec(deployment)["containers"]
        resources = container["resources"]
        assert _cores(resources["limits"]["cpu"]) >= _cores(resources["requests"]["cpu"]), service


def test_every_deployment_waits_for_the_topics_without_creating_them(
    base: list[dict[str, Any]],
) -> None:
    for service, deployment in _deployments(base).items():
        spec = pod_spec(deployment)
        (init,) = spec["initContainers"]
        (container,) = spec["containers"]
        assert init["args"][:2] == ["topics", "wait"], service
        assert handler_for(init["args"]) is _topics_wait
        assert init["image"] == container["image"], service
        # The same connection settings as the service (a security component patches both).
        assert init["envFrom"] == container["envFrom"], service


def test_the_sender_has_time_to_finish_its_longest_attempt(base: list[dict[str, Any]]) -> None:
    needed = longest_attempt_s() + COMMIT_MARGIN_S
    sender = pod_spec(_deployments(base)["sender"])
    assert sender["terminationGracePeriodSeconds"] >= needed
    for service, deployment in _deployments(base).items():
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= 30, service


def test_startup_waits_for_readiness_and_liveness_is_separate(
    base: list[dict[str, Any]],
) -> None:
    for service, deployment in _deployments(base).items():
        (container,) = pod_spec(deployment)["containers"]
        startup = container["startupProbe"]
        assert startup["httpGet"]["path"] == container["readinessProbe"]["httpGet"]["path"]
        assert startup["httpGet"]["path"] != container["livenessProbe"]["httpGet"]["path"]
        # Catching up on 100,000 webhooks took 86 s on a loaded machine: allow ten minutes.
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600, service


def test_every_pod_runs_as_the_dedicated_account_without_a_token(
    base: list[dict[str, Any]],
) -> None:
    account = of_kind(base, "ServiceAccount")["hookstream"]
    assert account["automountServiceAccountToken"] is False
    assert not {"Role", "RoleBinding", "ClusterRoleBinding"} & {o["kind"] for o in base}
    for kind in ("Deployment", "Job"):
        for name, workload in of_kind(base, kind).items():
            spec = pod_spec(workload)
            assert spec["serviceAccountName"] == "hookstream", name
            assert spec["automountServiceAccountToken"] is False, name


def test_init_containers_are_hardened_and_bounded(base: list[dict[str, Any]]) -> None:
    for name, container in _all_containers(base):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}, name


def test_replicas_spread_over_nodes_and_zones(base: list[dict[str, Any]]) -> None:
    for service, deployment in _deployments(base).items():
        pod = deployment["spec"]["template"]["metadata"]["labels"]
        constraints = pod_spec(deployment)["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints}
        assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, service
        for constraint in constraints:
            assert labels_match(constraint["labelSelector"], pod), service


def test_a_broken_pod_never_blocks_a_drain(base: list[dict[str, Any]]) -> None:
    budgets = of_kind(base, "PodDisruptionBudget")
    assert budgets
    for name, budget in budgets.items():
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow", name


def test_every_object_carries_the_recommended_labels(
    base: list[dict[str, Any]], overlay: list[dict[str, Any]]
) -> None:
    for objects in (base, overlay, render("namespace")):
        for obj in objects:
            labels = obj["metadata"].get("labels", {})
            what = f"{obj['kind']}/{obj['metadata']['name']}"
            assert labels.get("app.kubernetes.io/name") == "hookstream", what
            assert labels.get("app.kubernetes.io/part-of") == "hookstream", what
            if obj["kind"] not in ("Namespace", "Secret", "ConfigMap", "ServiceAccount"):
                assert labels.get("app.kubernetes.io/component"), what


# --- network policies -------------------------------------------------------------------------

PRIVATE = ["10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "127.0.0.1"]
PRIVATE_V6 = ["fd00::1", "fe80::1", "::1"]
PUBLIC = ["8.8.8.8", "2606:4700:4700::1111"]


def _selected(policy: dict[str, Any], pod: dict[str, str]) -> bool:
    return labels_match(policy["spec"]["podSelector"], pod)


def _ip_allowed(rules: list[dict[str, Any]], address: str) -> bool:
    ip = ipaddress.ip_address(address)
    for rule in rules:
        for peer in rule.get("to", rule.get("from", [])):
            block = peer.get("ipBlock")
            if block is None:
                continue
            network = ipaddress.ip_network(block["cidr"])
            if ip.version != network.version or ip not in network:
                continue
            if not any(ip in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


def _ports(rules: list[dict[str, Any]], peer_key: str) -> set[int]:
    ports: set[int] = set()
    for rule in rules:
        if peer_key in str(rule.get("to", rule.get("from", []))):
            for port in rule.get("ports", []):
                ports.update(range(port["port"], port.get("endPort", port["port"]) + 1))
    return ports


def _rules(base: list[dict[str, Any]], pod: dict[str, str], direction: str) -> list[Any]:
    rules: list[Any] = []
    for policy in of_kind(base, "NetworkPolicy").values():
        if _selected(policy, pod) and direction.capitalize() in policy["spec"]["policyTypes"]:
            rules += policy["spec"].get(direction, [])
    return rules


def test_everything_is_denied_unless_a_process_needs_it(base: list[dict[str, Any]]) -> None:
    deny = of_kind(base, "NetworkPolicy")["hookstream-default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    for kind in ("Deployment", "Job"):
        for name, workload in of_kind(base, kind).items():
            pod = workload["spec"]["template"]["metadata"]["labels"]
            component = pod["app.kubernetes.io/component"]
            egress = _rules(base, pod, "egress")
            assert {53} <= _ports(egress, "kube-dns"), f"{name}: DNS"
            assert {9092, 9093} <= _ports(egress, "kafka"), f"{name}: Kafka"
            reaches_internet = component in ("sender", "admin")
            for address in PUBLIC:
                assert _ip_allowed(egress, address) == reaches_internet, (name, address)
            for address in PRIVATE + PRIVATE_V6:
                assert not _ip_allowed(egress, address), (name, address)
            ingress = _rules(base, pod, "ingress")
            if component == "admin":
                (rule,) = ingress
                assert "from" not in rule and rule["ports"] == [{"protocol": "TCP", "port": 8080}]
            elif component == "topics":
                assert ingress == [], name
            else:
                # Only scrapes of the ops port, from the monitoring namespace.
                (rule,) = ingress
                assert "monitoring" in str(rule["from"]), name
