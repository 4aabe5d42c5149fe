"""deploy/redis-sentinel/: the service with a Redis that fails over (3 Redis nodes, 3 Sentinels).

The overlay's patches are applied here the way kustomize applies these shapes (an object deleted, a
ConfigMap's data merged, container env merged by name, a custom resource's lists replaced), and
the result is checked against the settings it feeds: the API and the workers reach the Sentinels
of the StatefulSet, by its pods' stable names, with the master name and password the pods use.
(`kubectl kustomize deploy/redis-sentinel` renders the same objects; nothing runs a cluster here.)
"""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from common.settings import Settings
from tests.deploy.test_kubernetes_manifests import (
    DEPLOY, KUBERNETES, _documents, _environment, _find, _pod_spec, _secret_ref, _settings,
)

OVERLAY = DEPLOY / "redis-sentinel"
REDIS_LABELS = {"app.kubernetes.io/name": "kube-insight-logserver", "app.kubernetes.io/component": "redis"}


def _kustomization() -> dict:
    (kustomization,) = _documents(OVERLAY / "kustomization.yaml")
    return kustomization


def _patches() -> list[dict]:
    return [yaml.safe_load(entry["patch"]) for entry in _kustomization()["patches"]]


def _apply(objects: list[dict], patch: dict) -> list[dict]:
    key = (patch["kind"], patch["metadata"]["name"])
    (target,) = [o for o in objects if (o["kind"], o["metadata"]["name"]) == key]
    if patch.get("$patch") == "delete":
        return [o for o in objects if o is not target]
    if patch["kind"] == "ConfigMap":
        target["data"].update(patch["data"])
    elif patch["kind"] == "Deployment":
        for change in _pod_spec(patch)["containers"]:
            (container,) = [c for c in _pod_spec(target)["containers"] if c["name"] == change["name"]]
            names = {entry["name"] for entry in change["env"]}
            container["env"] = change["env"] + [e for e in container["env"] if e["name"] not in names]
    elif patch["kind"] == "NetworkPolicy":
        target["spec"]["ingress"] = patch["spec"]["ingress"]  # no merge key: the list is replaced
    else:  # custom resources (KEDA): merged as JSON, lists replaced
        target["spec"].update(patch["spec"])
    return objects


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return [document for path in sorted(KUBERNETES.glob("*.yaml")) if path.name != "kustomization.yaml"
            for document in _documents(path)]


@pytest.fixture(scope="module")
def objects(base) -> list[dict]:
    result = copy.deepcopy(base)
    for patch in _patches():
        result = _apply(result, patch)
    extra = [p for p in _kustomization()["resources"] if p != "../kubernetes"]
    return result + [document for name in extra for document in _documents(OVERLAY / name)]


@pytest.fixture(scope="module")
def statefulset(objects) -> dict:
    return _find(objects, "StatefulSet", "redis-ha")


def _script(objects: list[dict], name: str) -> str:
    return _find(objects, "ConfigMap", "redis-ha-scripts")["data"][name]


def _pod_env(statefulset: dict, container: str) -> dict:
    (found,) = [c for c in _pod_spec(statefulset)["containers"] if c["name"] == container]
    return {entry["name"]: entry for entry in found["env"]}


def test_the_overlay_is_the_service_with_the_single_redis_replaced(base, objects):
    assert _kustomization()["resources"] == ["../kubernetes", "redis-ha.yaml"]
    single = {(o["kind"], o["metadata"]["name"]) for o in _documents(KUBERNETES / "redis.yaml")}
    deleted = {(p["kind"], p["metadata"]["name"]) for p in _patches() if p.get("$patch") == "delete"}
    assert deleted == single - {("ConfigMap", "redis-config")}, "redis-config feeds redis-ha's appendfsync"
    assert [o for o in objects if o["kind"] == "StatefulSet"] == [_find(objects, "StatefulSet", "redis-ha")]


@pytest.mark.parametrize("deployment", ["logserver-api", "logserver-worker"])
def test_the_api_and_the_workers_ask_the_statefulsets_sentinels_for_the_primary(objects, statefulset, deployment):
    settings = _settings(objects, deployment)
    service = _find(objects, "Service", statefulset["spec"]["serviceName"])
    namespace = statefulset["metadata"]["namespace"]
    (sentinel_port,) = [p["port"] for p in service["spec"]["ports"] if p["name"] == "sentinel"]
    pods = [f"redis-ha-{i}.{service['metadata']['name']}.{namespace}.svc.cluster.local"
            for i in range(statefulset["spec"]["replicas"])]
    assert settings.redis_sentinels == tuple((pod, sentinel_port) for pod in pods)
    assert settings.redis_sentinel_master == _pod_env(statefulset, "sentinel")["MASTER"]["value"]
    assert _pod_env(statefulset, "redis")["SERVICE"]["value"] == f"{service['metadata']['name']}.{namespace}.svc.cluster.local"


def test_a_batch_is_acknowledged_only_once_a_replica_holds_it(objects, statefulset):
    settings = _settings(objects, "logserver-api")  # the API acknowledges (an API-only option)
    assert settings.redis_wait_replicas == 1
    assert settings.redis_wait_replicas <= statefulset["spec"]["replicas"] - 1


@pytest.mark.parametrize("deployment", ["logserver-api", "logserver-worker"])
def test_sentinels_redis_nodes_and_the_service_share_one_password_secret(objects, statefulset, deployment):
    (container,) = _pod_spec(_find(objects, "Deployment", deployment))["containers"]
    password = _secret_ref(container, "REDIS_PASSWORD")
    assert _secret_ref(container, "REDIS_SENTINEL_PASSWORD") == password
    for name in ("redis", "sentinel"):
        assert _pod_env(statefulset, name)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == password
    sentinel = _script(objects, "sentinel.sh")
    assert "requirepass $REDIS_PASSWORD" in sentinel and "sentinel auth-pass $MASTER $REDIS_PASSWORD" in sentinel
    assert "--requirepass \"$REDIS_PASSWORD\" --masterauth \"$REDIS_PASSWORD\"" in _script(objects, "redis.sh")


def test_a_failover_needs_a_majority_of_the_sentinels(objects, statefulset):
    (quorum,) = re.findall(r"sentinel monitor \$MASTER \$primary 6379 (\d+)", _script(objects, "sentinel.sh"))
    assert int(quorum) == statefulset["spec"]["replicas"] // 2 + 1


def test_one_pod_per_node_and_one_voluntary_eviction_at_a_time(objects, statefulset):
    (rule,) = _pod_spec(statefulset)["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert rule["topologyKey"] == "kubernetes.io/hostname" and rule["labelSelector"]["matchLabels"] == REDIS_LABELS
    budget = _find(objects, "PodDisruptionBudget", "redis-ha")
    assert budget["spec"]["maxUnavailable"] == 1 and budget["spec"]["selector"]["matchLabels"] == REDIS_LABELS


def test_a_starting_pod_can_reach_the_other_sentinels_before_it_is_ready(objects, statefulset):
    service = _find(objects, "Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert "sentinel get-master-addr-by-name" in _script(objects, "primary.sh")


def test_every_node_keeps_the_single_redis_durability(objects):
    redis = _script(objects, "redis.sh")
    for option in ("--appendonly yes", '--appendfsync "$REDIS_APPENDFSYNC"', "--maxmemory-policy noeviction"):
        assert option in redis


def test_keda_reads_the_same_queue_through_the_same_sentinels(objects):
    settings = _settings(objects, "logserver-worker")
    (trigger,) = _find(objects, "ScaledObject", "logserver-worker")["spec"]["triggers"]
    assert trigger["type"] == "redis-sentinel"
    assert trigger["metadata"]["addresses"] == ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
    assert trigger["metadata"]["sentinelMaster"] == settings.redis_sentinel_master
    assert trigger["metadata"]["listName"] == f"rq:queue:{settings.queue_name}"
    parameters = {r["parameter"] for r in _find(objects, "TriggerAuthentication", "logserver-redis")["spec"]["secretTargetRef"]}
    assert parameters == {"password", "sentinelPassword"}


def test_redis_pods_reach_each_other_and_the_service_reaches_both_ports(objects):
    (rule,) = _find(objects, "NetworkPolicy", "redis")["spec"]["ingress"]
    components = {peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component") for peer in rule["from"]
                  if "namespaceSelector" not in peer}
    assert components == {"api", "worker", "redis"}
    assert {p["port"] for p in rule["ports"]} == {6379, 26379}


def test_the_overlay_changes_no_other_setting(base, objects):
    before = _environment(_pod_spec(_find(base, "Deployment", "logserver-worker"))["containers"][0], base)
    after = _environment(_pod_spec(_find(objects, "Deployment", "logserver-worker"))["containers"][0], objects)
    changed = {name for name in after if before.get(name) != after[name]}
    assert changed == {"REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_WAIT_REPLICAS",
                       "REDIS_SENTINEL_PASSWORD"}
    assert Settings().queue_name == _settings(objects, "logserver-worker").queue_name
