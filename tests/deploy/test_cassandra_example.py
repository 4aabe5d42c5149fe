"""The example Cassandra cluster of deploy/kubernetes/cassandra/ is the one the service's ConfigMap
expects: its Service is CASSANDRA_HOSTS, its data centre holds the replicas of
CASSANDRA_REPLICATION_FACTORS, and one pod may be down at LOCAL_QUORUM.

Nothing runs a cluster: the files are read and checked against the settings they feed.
"""

from __future__ import annotations

import pytest

from tests.deploy.test_kubernetes_manifests import (  # noqa: F401 (objects: the service's manifests, a fixture)
    API, KUBERNETES, WORKER, _container, _documents, _find, _pod_spec, _settings, objects,
)

EXAMPLE = KUBERNETES / "cassandra"
QUORUM_OF_THREE = 2


@pytest.fixture(scope="module")
def example() -> list[dict]:
    return [document for path in sorted(EXAMPLE.glob("*.yaml")) if path.name != "kustomization.yaml"
            for document in _documents(path)]


@pytest.fixture(scope="module")
def statefulset(example) -> dict:
    return _find(example, "StatefulSet", "cassandra")


def _env(statefulset: dict) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in _container(statefulset)["env"]}


def test_the_example_kustomization_lists_its_manifests():
    (kustomization,) = _documents(EXAMPLE / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in EXAMPLE.glob("*.yaml") if p.name != "kustomization.yaml")


def test_every_example_object_is_in_the_cassandra_namespace(example):
    (namespace,) = [o["metadata"]["name"] for o in example if o["kind"] == "Namespace"]
    assert {o["metadata"]["namespace"] for o in example if o["kind"] != "Namespace"} == {namespace}


def test_the_service_contact_point_is_the_example_headless_service(objects, example):
    (host,) = _settings(objects, WORKER).cassandra_hosts
    name, namespace, *_ = host.split(".")
    service = _find(example, "Service", name)
    assert service["metadata"]["namespace"] == namespace
    assert service["spec"]["clusterIP"] == "None", "headless: the name resolves to every node"
    cql = next(p for p in service["spec"]["ports"] if p["name"] == "cql")
    assert cql["port"] == _settings(objects, WORKER).cassandra_port


def test_the_statefulset_is_governed_by_the_headless_service_and_selects_its_pods(example, statefulset):
    service = _find(example, "Service", statefulset["spec"]["serviceName"])
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["publishNotReadyAddresses"] is True, "seeds must resolve before they are ready"


def test_the_keyspace_replication_matches_the_example_data_centre_and_replica_count(objects, statefulset):
    for deployment in (API, WORKER):
        settings = _settings(objects, deployment)
        assert settings.replication_map() == {"class": "NetworkTopologyStrategy", _env(statefulset)["CASSANDRA_DC"]: 3}
        assert settings.cassandra_local_dc == _env(statefulset)["CASSANDRA_DC"]
    assert statefulset["spec"]["replicas"] == 3
    assert _env(statefulset)["CASSANDRA_ENDPOINT_SNITCH"] == "GossipingPropertyFileSnitch"


def test_writes_and_reads_are_at_local_quorum_so_one_node_may_be_down(objects, example):
    for deployment in (API, WORKER):
        settings = _settings(objects, deployment)
        assert settings.write_consistency() == settings.read_consistency() == "LOCAL_QUORUM"
    budget = _find(example, "PodDisruptionBudget", "cassandra")
    assert budget["spec"]["maxUnavailable"] == 3 - QUORUM_OF_THREE


def test_the_seeds_are_pods_of_the_statefulset(statefulset):
    service, namespace = statefulset["spec"]["serviceName"], statefulset["metadata"]["namespace"]
    pods = {f"{statefulset['metadata']['name']}-{n}.{service}.{namespace}.svc.cluster.local"
            for n in range(statefulset["spec"]["replicas"])}
    seeds = _env(statefulset)["CASSANDRA_SEEDS"].split(",")
    assert 1 < len(seeds) < statefulset["spec"]["replicas"] and set(seeds) <= pods


def test_each_node_runs_on_its_own_kubernetes_node_with_its_own_volume(statefulset):
    (rule,) = _pod_spec(statefulset)["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert rule["topologyKey"] == "kubernetes.io/hostname"
    assert rule["labelSelector"]["matchLabels"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    (mount,) = _container(statefulset)["volumeMounts"]
    assert mount == {"name": claim["metadata"]["name"], "mountPath": "/var/lib/cassandra"}


def test_the_heap_fits_in_half_the_memory_limit(statefulset):
    resources = _container(statefulset)["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == "8Gi"
    assert _env(statefulset)["MAX_HEAP_SIZE"] == "4G" and "HEAP_NEWSIZE" in _env(statefulset)


def test_cql_is_open_only_to_the_api_and_the_workers(example, objects):
    policy = _find(example, "NetworkPolicy", "cassandra")
    (cql,) = [rule for rule in policy["spec"]["ingress"] if rule["ports"] == [{"port": 9042, "protocol": "TCP"}]]
    (source,) = cql["from"]
    assert source["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": _find(objects, "Deployment", WORKER)["metadata"]["namespace"]}
    (expression,) = source["podSelector"]["matchExpressions"]
    components = {_find(objects, "Deployment", d)["spec"]["template"]["metadata"]["labels"]
                  ["app.kubernetes.io/component"] for d in (API, WORKER)}
    assert expression["key"] == "app.kubernetes.io/component" and set(expression["values"]) == components


def test_the_api_runs_at_least_two_replicas(objects):
    assert _find(objects, "Deployment", API)["spec"]["replicas"] >= 2
