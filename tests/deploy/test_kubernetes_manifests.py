"""The files under deploy/ agree with the code: option names, ports, probe paths, the queue name,
the API's record shape and the metric names.

Nothing runs a cluster, Prometheus or fluent-bit: the files are read and checked against
common.settings, the CLI, the API (through its test harness), RQ and the metrics registries.
tests/integration/test_promtool.py runs promtool on deploy/prometheus/.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import fakeredis
import pytest
import yaml
from prometheus_client import generate_latest

from cli.main import _parser
from common.metrics import ApiMetrics, WorkerMetrics
from common.queue import BatchQueue, QueueStatus
from common.settings import EXAMPLE_SECRET_MARK, OPTIONS, Settings, build_settings, example_secrets, options_for
from tests.records import kubernetes
from tests.unit.api_harness import FakeStore, build

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
PROMETHEUS = DEPLOY / "prometheus"
DOCKER = DEPLOY / "docker"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

OUR_IMAGE = "kube-insight-logserver:latest"
API, WORKER = "logserver-api", "logserver-worker"
OUR_DEPLOYMENTS = {API: "api", WORKER: "worker"}  # Deployment -> CLI subcommand and settings scope
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
CLUSTER_SCOPED_KINDS = ("Namespace", "ClusterRole", "ClusterRoleBinding")
STRUCTURED_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))


# --- reading the files ---


def _documents(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document is not None]


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return [
        document
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for document in _documents(path)
    ]


def _find(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r} in deploy/kubernetes, found {len(found)}"
    return found[0]


def _pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def _container(workload: dict) -> dict:
    (container,) = _pod_spec(workload)["containers"]
    return container


def _workloads(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]


def _named_port(container: dict, name_or_number) -> int:
    """The container port a probe or Service refers to, by name or number."""
    if isinstance(name_or_number, int):
        return name_or_number
    (port,) = [p["containerPort"] for p in container["ports"] if p.get("name") == name_or_number]
    return port


def _env_names(container: dict, objects: list[dict]) -> set[str]:
    names = {entry["name"] for entry in container.get("env", [])}
    for source in container.get("envFrom", []):
        config_map = _find(objects, "ConfigMap", source["configMapRef"]["name"])
        names |= set(config_map["data"])
    return names


def _secret_value(objects: list[dict], ref: dict) -> str:
    return _find(objects, "Secret", ref["name"])["stringData"][ref["key"]]


def _environment(container: dict, objects: list[dict]) -> dict[str, str]:
    """The variables the container starts with: ConfigMaps, values, and the Secrets shipped here
    (optional Secrets that are not, like cassandra-credentials, left unset, as by default)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(_find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref and not ref.get("optional"):
            env[entry["name"]] = _secret_value(objects, ref)
    return env


def _secret_ref(container: dict, name: str) -> dict:
    (entry,) = [e for e in container.get("env", []) if e["name"] == name]
    return entry["valueFrom"]["secretKeyRef"]


def _settings(objects: list[dict], deployment: str) -> Settings:
    scope = OUR_DEPLOYMENTS[deployment]
    container = _container(_find(objects, "Deployment", deployment))
    return build_settings({}, _environment(container, objects), scope=scope)


def _namespace(objects: list[dict]) -> str:
    (namespace,) = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
    return namespace


# fluent-bit's classic configuration format: [SECTION] headers, then `Key value` lines.


def _fluent_bit_sections(text: str) -> list[tuple[str, dict[str, list[str]]]]:
    """(SECTION, {lowercased key: [values]}) in file order; raises AssertionError on a bad line."""
    sections: list[tuple[str, dict[str, list[str]]]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            assert raw.startswith("#"), f"line {number}: keep comments at column 0: {raw!r}"
            continue
        if line.startswith("["):
            assert raw == line and line.endswith("]"), f"line {number}: bad section header {raw!r}"
            sections.append((line[1:-1].upper(), {}))
            continue
        assert sections, f"line {number}: {raw!r} is outside any section"
        assert raw.startswith("    ") and not raw.startswith("     "), (
            f"line {number}: indent keys by exactly 4 spaces: {raw!r}"
        )
        key, _, value = line.partition(" ")
        assert value.strip(), f"line {number}: {key} has no value"
        sections[-1][1].setdefault(key.lower(), []).append(value.strip())
    return sections


def _section(sections, kind: str, plugin: str) -> dict[str, list[str]]:
    found = [keys for name, keys in sections if name == kind and keys["name"] == [plugin]]
    assert len(found) == 1, f"expected one [{kind}] with Name {plugin}, found {len(found)}"
    return found[0]


def _one(keys: dict[str, list[str]], key: str) -> str:
    values = keys.get(key.lower(), [])
    assert len(values) == 1, f"expected one {key}, found {values}"
    return values[0]


@pytest.fixture(scope="module")
def kubernetes_fluent_bit(objects) -> list:
    return _fluent_bit_sections(_find(objects, "ConfigMap", "fluent-bit-config")["data"]["fluent-bit.conf"])


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose_fluent_bit() -> list:
    return _fluent_bit_sections((DOCKER / "fluent-bit.conf").read_text())


# --- every file parses ---


@pytest.mark.parametrize("path", STRUCTURED_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_deploy_file_parses(path):
    if path.suffix == ".json":
        with path.open() as file:
            assert json.load(file)
    else:
        assert _documents(path)


def test_the_deploy_files_are_where_the_docs_say():
    expected = {
        "kubernetes/kustomization.yaml", "kubernetes/config.yaml", "kubernetes/api.yaml",
        "kubernetes/worker.yaml", "kubernetes/worker-scaledobject.yaml", "kubernetes/redis.yaml",
        "kubernetes/fluent-bit.yaml", "prometheus/scrape-config.yml", "prometheus/rules.yml",
        "prometheus/grafana-dashboard.json",
    }
    assert expected <= {str(p.relative_to(DEPLOY)) for p in STRUCTURED_FILES}


@pytest.mark.parametrize("source", ["kubernetes ConfigMap", "deploy/docker/fluent-bit.conf", "deploy/docker/parsers.conf"])
def test_fluent_bit_configs_are_well_formed(objects, source):
    if source == "kubernetes ConfigMap":
        text = _find(objects, "ConfigMap", "fluent-bit-config")["data"]["fluent-bit.conf"]
    else:
        text = (ROOT / source).read_text()
    assert _fluent_bit_sections(text)


def test_sample_log_holds_docker_json_log_lines():
    lines = (DOCKER / "sample.log").read_text().splitlines()
    assert lines
    for line in lines:
        record = json.loads(line)
        assert set(record) == {"log", "stream", "time"}
        assert record["stream"] in ("stdout", "stderr")


# --- kustomization and namespaces ---


def test_kustomization_lists_every_manifest():
    (kustomization,) = _documents(KUBERNETES / "kustomization.yaml")
    manifests = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(manifests)


def test_every_namespaced_object_is_in_the_namespace_created_here(objects):
    namespace = _namespace(objects)
    outside = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in objects
        if o["kind"] not in CLUSTER_SCOPED_KINDS and o["metadata"].get("namespace") != namespace
    ]
    assert not outside, f"not in namespace {namespace}: {outside}"


# --- our containers: image, user, command, environment ---


@pytest.mark.parametrize("deployment", OUR_DEPLOYMENTS)
def test_our_deployments_run_the_image_built_from_the_dockerfile(objects, deployment):
    assert _container(_find(objects, "Deployment", deployment))["image"] == OUR_IMAGE


@pytest.mark.parametrize("deployment", OUR_DEPLOYMENTS)
def test_our_pods_run_as_the_dockerfiles_non_root_uid(objects, deployment):
    (dockerfile_user,) = re.findall(r"^USER (\d+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    security = _pod_spec(_find(objects, "Deployment", deployment))["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == int(dockerfile_user) == 10001


@pytest.mark.parametrize("deployment", OUR_DEPLOYMENTS)
def test_our_containers_run_the_cli_subcommand_of_their_role(objects, deployment):
    args = _container(_find(objects, "Deployment", deployment))["args"]
    assert args == [OUR_DEPLOYMENTS[deployment]]
    assert _parser().parse_args(args).command == OUR_DEPLOYMENTS[deployment]


def test_every_container_has_cpu_and_memory_requests_and_limits(objects):
    for workload in _workloads(objects):
        for container in _pod_spec(workload)["containers"]:
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[bound]), (
                    f"{workload['metadata']['name']}/{container['name']} lacks {bound}"
                )


@pytest.mark.parametrize("deployment", OUR_DEPLOYMENTS)
def test_every_environment_variable_of_our_containers_is_a_real_option(objects, deployment):
    known = {option.env for option in OPTIONS}
    unknown = _env_names(_container(_find(objects, "Deployment", deployment)), objects) - known
    assert not unknown, f"{deployment} sets variables no option reads: {sorted(unknown)}"


@pytest.mark.parametrize("deployment", OUR_DEPLOYMENTS)
def test_our_environment_values_are_accepted_by_the_settings(objects, deployment):
    settings = _settings(objects, deployment)
    environment = _environment(_container(_find(objects, "Deployment", deployment)), objects)
    read = [option for option in options_for(OUR_DEPLOYMENTS[deployment]) if option.env in environment]
    assert read, f"{deployment} sets none of its options"
    assert {o.env: getattr(settings, o.field) for o in read} == {o.env: o.parse(environment[o.env]) for o in read}


def test_config_map_replicates_across_data_centers_with_local_quorum(objects):
    settings = _settings(objects, WORKER)
    assert settings.cassandra_replication_strategy == "NetworkTopologyStrategy"
    assert settings.replication_map() == {"class": "NetworkTopologyStrategy", "dc1": 3}
    assert settings.cassandra_consistency == "LOCAL_QUORUM"


@pytest.mark.parametrize("deployment", OUR_DEPLOYMENTS)
def test_our_containers_use_the_redis_service(objects, deployment):
    url = urlsplit(_settings(objects, deployment).redis_url)
    service = _find(objects, "Service", url.hostname)
    assert url.port in [p["port"] for p in service["spec"]["ports"]]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "redis"


# --- the API ---


def test_the_api_requires_both_tokens_from_the_secret(objects):
    settings = _settings(objects, API)
    assert settings.ingest_token and settings.query_token and settings.ingest_token != settings.query_token
    headers = {"Authorization": f"Bearer {settings.query_token}"}
    query = {"namespace": "n", "pod_name": "p", "container_name": "c",
             "start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-01T01:00:00Z"}
    assert build(settings).client.simulate_get("/query", params=query).status_code == 401
    assert build(settings).client.simulate_get("/query", params=query, headers=headers).status_code == 200


def test_api_service_exposes_the_api_port(objects):
    service = _find(objects, "Service", API)
    container = _container(_find(objects, "Deployment", API))
    (port,) = service["spec"]["ports"]
    assert port["port"] == Settings().port == 8080
    assert _named_port(container, port["targetPort"]) == _settings(objects, API).port


def test_api_service_selects_the_api_pods(objects):
    selector = _find(objects, "Service", API)["spec"]["selector"]
    labels = _find(objects, "Deployment", API)["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


@pytest.mark.parametrize("probe,path", [("readinessProbe", "/ready"), ("livenessProbe", "/metrics")])
def test_api_probes_use_the_api_port_and_route(objects, probe, path):
    container = _container(_find(objects, "Deployment", API))
    http_get = container[probe]["httpGet"]
    assert http_get["path"] == path
    assert _named_port(container, http_get["port"]) == Settings().port


def test_api_readiness_probe_answers_200_when_redis_and_cassandra_answer(objects):
    path = _container(_find(objects, "Deployment", API))["readinessProbe"]["httpGet"]["path"]
    assert build().client.simulate_get(path).status_code == 200


def test_api_readiness_probe_passes_while_cassandra_is_down(objects):
    # The queue absorbs a Cassandra outage: the API must keep receiving fluent-bit's batches.
    path = _container(_find(objects, "Deployment", API))["readinessProbe"]["httpGet"]["path"]
    harness = build(store=FakeStore(down="no host available"))
    assert harness.client.simulate_get(path).status_code == 200


def test_api_readiness_probe_fails_while_redis_is_down(objects):
    path = _container(_find(objects, "Deployment", API))["readinessProbe"]["httpGet"]["path"]
    harness = build()
    harness.redis_server.connected = False
    assert harness.client.simulate_get(path).status_code == 503


def test_api_liveness_probe_passes_while_redis_and_cassandra_are_down(objects):
    # A dependency outage must not make Kubernetes restart the API.
    path = _container(_find(objects, "Deployment", API))["livenessProbe"]["httpGet"]["path"]
    harness = build(store=FakeStore(down="no host available"))
    harness.redis_server.connected = False
    assert harness.client.simulate_get(path).status_code == 200


# --- the workers ---


def test_worker_serves_metrics_on_the_settings_port(objects):
    container = _container(_find(objects, "Deployment", WORKER))
    assert _named_port(container, "metrics") == Settings().worker_metrics_port == 9100
    assert _settings(objects, WORKER).worker_metrics_port == Settings().worker_metrics_port


def test_worker_liveness_probe_reads_its_metrics(objects):
    container = _container(_find(objects, "Deployment", WORKER))
    http_get = container["livenessProbe"]["httpGet"]
    assert http_get["path"] == "/metrics"
    assert _named_port(container, http_get["port"]) == Settings().worker_metrics_port


def test_worker_deployment_leaves_its_replica_count_to_keda(objects):
    assert "replicas" not in _find(objects, "Deployment", WORKER)["spec"]


# --- KEDA ---


@pytest.fixture(scope="module")
def scaled_object(objects) -> dict:
    (scaled_object,) = [o for o in objects if o["kind"] == "ScaledObject"]
    return scaled_object


@pytest.fixture(scope="module")
def redis_trigger(scaled_object) -> dict:
    (trigger,) = scaled_object["spec"]["triggers"]
    assert trigger["type"] == "redis"
    return trigger["metadata"]


def test_keda_scales_the_worker_deployment(objects, scaled_object):
    target = scaled_object["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target["name"] == WORKER


def test_keda_watches_the_rq_queue_list(objects, redis_trigger):
    settings = _settings(objects, WORKER)
    assert redis_trigger["listName"] == "rq:queue:" + Settings().queue_name == "rq:queue:" + settings.queue_name
    assert redis_trigger["listName"] == BatchQueue(fakeredis.FakeRedis(), settings).rq_queue.key


def test_keda_reads_the_redis_database_the_workers_use(objects, redis_trigger):
    url = urlsplit(_settings(objects, WORKER).redis_url)
    host, port = redis_trigger["address"].rsplit(":", 1)
    assert host.split(".")[:2] == [url.hostname, _namespace(objects)]
    assert int(port) == url.port
    assert int(redis_trigger.get("databaseIndex", "0")) == int(url.path.lstrip("/") or 0)


def test_keda_scales_on_a_positive_list_length(redis_trigger):
    assert int(redis_trigger["listLength"]) > 0


def test_keda_authenticates_to_redis_with_the_secret(objects, scaled_object):
    (trigger,) = scaled_object["spec"]["triggers"]
    authentication = _find(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (target,) = authentication["spec"]["secretTargetRef"]
    assert target["parameter"] == "password"
    assert _secret_value(objects, target) == _settings(objects, WORKER).redis_password


def test_keda_keeps_at_least_one_worker(scaled_object):
    # Workers run RQ's scheduler, which puts retried batches back on the list KEDA watches.
    assert scaled_object["spec"]["minReplicaCount"] >= 1
    assert scaled_object["spec"]["maxReplicaCount"] >= scaled_object["spec"]["minReplicaCount"]


# --- Redis ---


def _redis_flags(objects) -> dict[str, str]:
    """redis-server's flags as Kubernetes runs them: $(VAR) replaced by a ConfigMap value."""
    container = _container(_find(objects, "StatefulSet", "redis"))
    args = container["args"]
    assert args[0] == "redis-server"
    from_config_maps = {
        env["name"]: _find(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
        for env in container.get("env", []) if (ref := env.get("valueFrom", {}).get("configMapKeyRef"))
    }
    args = [re.sub(r"\$\((\w+)\)", lambda m: from_config_maps.get(m[1], m[0]), arg) for arg in args]
    return dict(zip(args[1::2], args[2::2]))


def test_redis_keeps_queued_batches(objects):
    flags = _redis_flags(objects)
    assert flags["--appendonly"] == "yes"
    assert flags["--maxmemory-policy"] == "noeviction"


def test_redis_fsyncs_every_acknowledged_batch_by_default(objects):
    assert _redis_flags(objects)["--appendfsync"] == "always"


def test_redis_maxmemory_fits_in_its_memory_limit(objects):
    flags = _redis_flags(objects)
    units = {"kb": 1000, "k": 1000, "mb": 10**6, "m": 10**6, "gb": 10**9, "g": 10**9}
    number, unit = re.fullmatch(r"(\d+)([a-z]*)", flags["--maxmemory"].lower()).groups()
    maxmemory = int(number) * units.get(unit, 1)
    limit = _container(_find(objects, "StatefulSet", "redis"))["resources"]["limits"]["memory"]
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", limit).groups()
    assert 0 < maxmemory < int(number) * {"Mi": 2**20, "Gi": 2**30}[unit]


def test_redis_requires_the_password_of_the_secret(objects):
    redis = _container(_find(objects, "StatefulSet", "redis"))
    assert _redis_flags(objects)["--requirepass"] == "$(REDIS_PASSWORD)"  # expanded by Kubernetes
    assert _environment(redis, objects)["REDIS_PASSWORD"] == _settings(objects, WORKER).redis_password != ""


def test_redis_readiness_probe_authenticates_with_the_password(objects):
    command = _container(_find(objects, "StatefulSet", "redis"))["readinessProbe"]["exec"]["command"]
    assert command[:2] == ["sh", "-c"]
    assert 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping' in command[2] and "PONG" in command[2]


@pytest.mark.parametrize("deployment", OUR_DEPLOYMENTS)
def test_api_and_worker_get_the_redis_password_from_the_secret(objects, deployment):
    ref = _secret_ref(_container(_find(objects, "Deployment", deployment)), "REDIS_PASSWORD")
    assert not ref.get("optional")
    assert _settings(objects, deployment).redis_password == _secret_value(objects, ref) != ""


def test_the_shipped_secrets_are_example_values_the_processes_warn_about(objects):
    secret = _find(objects, "Secret", "logserver-secrets")
    assert set(secret["stringData"]) == {"REDIS_PASSWORD", "INGEST_TOKEN", "QUERY_TOKEN"}
    assert all(EXAMPLE_SECRET_MARK in value.lower() for value in secret["stringData"].values())
    assert example_secrets(_settings(objects, API)) == ["INGEST_TOKEN", "QUERY_TOKEN", "REDIS_PASSWORD"]


def test_redis_data_is_on_a_persistent_volume_claim(objects):
    statefulset = _find(objects, "StatefulSet", "redis")
    claims = {claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in _container(statefulset)["volumeMounts"]}
    assert mounts["/data"] in claims


# --- NetworkPolicies ---

QUERIER_LABEL = {"kube-insight.io/querier": "true"}
PROMETHEUS_LABEL = {"app.kubernetes.io/name": "prometheus"}


@dataclasses.dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict


def _pods(objects: list[dict]) -> list[Pod]:
    """Every pod the manifests run, and pods elsewhere that may knock: labelled ones and strangers."""
    ours = [Pod(w["metadata"]["name"], w["metadata"]["namespace"], w["spec"]["template"]["metadata"]["labels"])
            for w in _workloads(objects)]
    return ours + [
        Pod("querier", "ops", QUERIER_LABEL),
        Pod("prometheus", "monitoring", PROMETHEUS_LABEL),
        Pod("keda-operator", "keda", {"app": "keda-operator"}),
        Pod("stranger-next-door", _namespace(objects), {"app": "something-else"}),
        Pod("stranger", "default", {}),
    ]


def _selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels is evaluated here"
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def _admits(objects: list[dict], target: Pod, source: Pod, port: int) -> bool:
    """NetworkPolicy ingress semantics: no policy selects the pod -> open; else any rule admits."""
    policies = [p for p in objects if p["kind"] == "NetworkPolicy" and p["metadata"]["namespace"] == target.namespace
                and _selects(p["spec"]["podSelector"], target.labels) and "Ingress" in p["spec"]["policyTypes"]]
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            if rule.get("ports") and port not in [p["port"] for p in rule["ports"]]:
                continue
            for peer in rule.get("from", []):
                namespaces = peer.get("namespaceSelector")
                in_namespace = (source.namespace == target.namespace if namespaces is None
                                else _selects(namespaces, {"kubernetes.io/metadata.name": source.namespace}))
                if in_namespace and _selects(peer.get("podSelector", {}), source.labels):
                    return True
    return False


def _reaching(objects: list[dict], workload: str, port: int) -> set[str]:
    (target,) = [pod for pod in _pods(objects) if pod.name == workload]
    return {source.name for source in _pods(objects) if source is not target and _admits(objects, target, source, port)}


def test_only_the_api_the_workers_and_keda_reach_redis(objects):
    port = urlsplit(_settings(objects, WORKER).redis_url).port
    assert _reaching(objects, "redis", port) == {API, WORKER, "keda-operator"}


def test_only_fluent_bit_queriers_and_prometheus_reach_the_api(objects):
    assert _reaching(objects, API, _settings(objects, API).port) == {"fluent-bit", "querier", "prometheus"}


def test_only_prometheus_reaches_the_workers_metrics(objects):
    assert _reaching(objects, WORKER, _settings(objects, WORKER).worker_metrics_port) == {"prometheus"}


def test_the_querier_label_is_documented():
    (key, value), = QUERIER_LABEL.items()
    assert f"{key}: \"{value}\"" in (KUBERNETES / "README.md").read_text()


# --- fluent-bit in Kubernetes ---


def test_fluent_bit_tails_container_logs_with_the_docker_and_cri_parsers(kubernetes_fluent_bit):
    tail = _section(kubernetes_fluent_bit, "INPUT", "tail")
    assert _one(tail, "Path") == "/var/log/containers/*.log"
    parsers = {p.strip() for p in _one(tail, "multiline.parser").split(",")}
    assert parsers == {"docker", "cri"}


def _readme_fluent_bit() -> list:
    blocks = re.findall(r"```ini\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [section for block in blocks for section in _fluent_bit_sections(block)]


@pytest.mark.parametrize("source", ["kubernetes", "compose", "readme"])
def test_fluent_bit_tail_sends_each_lines_offset_and_file_under_the_keys_the_api_reads(
        source, kubernetes_fluent_bit, compose_fluent_bit):
    sections = {"kubernetes": kubernetes_fluent_bit, "compose": compose_fluent_bit,
                "readme": _readme_fluent_bit()}[source]
    tail = _section(sections, "INPUT", "tail")
    assert _one(tail, "Offset_Key") == Settings().fluent_bit_offset_key
    assert _one(tail, "Path_Key") == Settings().fluent_bit_path_key


def test_fluent_bit_kubernetes_filter_matches_the_tail_tag(kubernetes_fluent_bit):
    tail = _section(kubernetes_fluent_bit, "INPUT", "tail")
    kubernetes = _section(kubernetes_fluent_bit, "FILTER", "kubernetes")
    # tail expands `kube.*` with the file's path, dots for slashes.
    tag_prefix = _one(tail, "Tag").removesuffix("*")
    directory = _one(tail, "Path").rsplit("/", 1)[0]
    assert _one(kubernetes, "Kube_Tag_Prefix") == tag_prefix + directory.strip("/").replace("/", ".") + "."
    assert _one(kubernetes, "Match") == _one(tail, "Tag")


def test_fluent_bit_posts_json_to_the_api_service(objects, kubernetes_fluent_bit):
    output = _section(kubernetes_fluent_bit, "OUTPUT", "http")
    service = _find(objects, "Service", API)
    assert _one(output, "Host").split(".")[:2] == [API, _namespace(objects)]
    assert int(_one(output, "Port")) in [p["port"] for p in service["spec"]["ports"]]
    assert _one(output, "URI") == "/write"
    assert _one(output, "Format") == "json"
    assert _one(output, "json_date_key") == "date"
    assert _one(output, "json_date_format") in ("double", "iso8601")


def test_fluent_bit_sends_the_ingest_token_the_api_requires(objects, kubernetes_fluent_bit):
    """fluent-bit puts ${VAR} from its environment in place; the API must accept what it sends."""
    daemonset = _container(_find(objects, "DaemonSet", "fluent-bit"))
    env = _environment(daemonset, objects)
    configured = _one(_section(kubernetes_fluent_bit, "OUTPUT", "http"), "Header")
    header = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], configured)
    name, _, value = header.partition(" ")
    settings = _settings(objects, API)
    assert env["INGEST_TOKEN"] == settings.ingest_token
    record = [{"kubernetes": kubernetes("n", "p", "c"), "date": 1.0}]
    client = build(settings).client
    assert client.simulate_post("/write", json=record).status_code == 401
    assert client.simulate_post("/write", json=record, headers={name: value}).status_code == 200


def test_fluent_bit_retries_without_limit_and_never_discards_its_buffer(kubernetes_fluent_bit):
    output = _section(kubernetes_fluent_bit, "OUTPUT", "http")
    assert _one(output, "Retry_Limit") == "no_limits"
    # storage.total_limit_size would discard the oldest buffered chunks once reached.
    assert "storage.total_limit_size" not in output


def test_fluent_bit_buffers_and_offsets_are_kept_on_the_node(objects, kubernetes_fluent_bit):
    daemonset = _find(objects, "DaemonSet", "fluent-bit")
    host_paths = {v["name"] for v in _pod_spec(daemonset)["volumes"] if "hostPath" in v}
    writable = [m["mountPath"] for m in _container(daemonset)["volumeMounts"]
                if m["name"] in host_paths and not m.get("readOnly")]
    service = next(keys for name, keys in kubernetes_fluent_bit if name == "SERVICE")
    tail = _section(kubernetes_fluent_bit, "INPUT", "tail")
    assert _one(tail, "storage.type") == "filesystem"
    for path in (_one(service, "storage.path"), _one(tail, "DB")):
        assert any(path.startswith(mount.rstrip("/") + "/") for mount in writable), path


def test_fluent_bit_reads_the_config_map_it_mounts(objects):
    daemonset = _find(objects, "DaemonSet", "fluent-bit")
    container = _container(daemonset)
    config_path = container["args"][container["args"].index("-c") + 1]
    volumes = {v["name"]: v for v in _pod_spec(daemonset)["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if "configMap" in volumes[m["name"]]]
    config_map = _find(objects, "ConfigMap", volumes[mount["name"]]["configMap"]["name"])
    directory, _, file_name = config_path.rpartition("/")
    assert directory == mount["mountPath"].rstrip("/")
    assert file_name in config_map["data"]


def test_fluent_bit_may_read_the_pods_and_namespaces_it_enriches(objects):
    daemonset = _find(objects, "DaemonSet", "fluent-bit")
    account = _pod_spec(daemonset)["serviceAccountName"]
    _find(objects, "ServiceAccount", account)
    (binding,) = [o for o in objects if o["kind"] == "ClusterRoleBinding"
                  and {"kind": "ServiceAccount", "name": account, "namespace": _namespace(objects)}
                  in o["subjects"]]
    role = _find(objects, "ClusterRole", binding["roleRef"]["name"])
    granted = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert {(r, v) for r in ("pods", "namespaces") for v in ("get", "list", "watch")} <= granted


# --- fluent-bit in docker compose ---


def test_compose_fluent_bit_mounts_files_of_the_repository(compose):
    service = compose["services"]["fluent-bit"]
    mounts = {}
    for volume in service["volumes"]:
        source, target = str(volume).split(":")[:2]
        assert (ROOT / source).is_file(), source
        mounts[target] = ROOT / source
    config_path = service["command"][service["command"].index("-c") + 1]
    assert mounts[config_path] == DOCKER / "fluent-bit.conf"


def test_compose_fluent_bit_parser_is_the_mounted_parsers_file(compose, compose_fluent_bit):
    service_section = next(keys for name, keys in compose_fluent_bit if name == "SERVICE")
    parsers_target = _one(service_section, "Parsers_File")
    volumes = {target: source for source, target in
               (str(v).split(":")[:2] for v in compose["services"]["fluent-bit"]["volumes"])}
    parsers = _fluent_bit_sections((ROOT / volumes[parsers_target]).read_text())
    tail = _section(compose_fluent_bit, "INPUT", "tail")
    assert _one(tail, "Parser") in [_one(keys, "Name") for name, keys in parsers if name == "PARSER"]


def test_compose_fluent_bit_tails_the_mounted_sample_log(compose, compose_fluent_bit):
    tail = _section(compose_fluent_bit, "INPUT", "tail")
    directory, _, pattern = _one(tail, "Path").rpartition("/")
    targets = [str(v).split(":")[1] for v in compose["services"]["fluent-bit"]["volumes"]]
    assert f"{directory}/sample.log" in targets and pattern == "*.log"


def test_compose_fluent_bit_posts_json_to_the_api_service(compose, compose_fluent_bit):
    output = _section(compose_fluent_bit, "OUTPUT", "http")
    assert _one(output, "Host") == "api" and "api" in compose["services"]
    assert _one(output, "Header") == "Authorization Bearer ${INGEST_TOKEN}"  # from its environment
    assert _one(output, "Port") == str(Settings().port)
    assert _one(output, "URI") == "/write"
    assert _one(output, "Format") == "json"
    assert _one(output, "Retry_Limit") == "no_limits"


def test_compose_fluent_bit_records_are_accepted_by_the_api(compose_fluent_bit):
    """Apply the config's modify and nest filters to sample.log as fluent-bit does, then POST."""
    modify = _section(compose_fluent_bit, "FILTER", "modify")
    nest = _section(compose_fluent_bit, "FILTER", "nest")
    output = _section(compose_fluent_bit, "OUTPUT", "http")
    assert _one(nest, "Operation") == "nest" and _one(nest, "Wildcard").endswith("*")
    prefix, remove = _one(nest, "Wildcard").removesuffix("*"), _one(nest, "Remove_prefix")
    records = []
    for line in (DOCKER / "sample.log").read_text().splitlines():
        record = json.loads(line)  # the docker parser, Time_Keep On
        record.update(dict(added.split(None, 1) for added in modify["add"]))
        nested = {key.removeprefix(remove): record.pop(key) for key in list(record) if key.startswith(prefix)}
        record[_one(nest, "Nest_under")] = nested
        record[_one(output, "json_date_key")] = record["time"][:26] + "Z"  # json_date_format iso8601
        records.append(record)
    response = build().client.simulate_post("/write", json=records)
    assert response.status_code == 200, response.text
    assert response.json["accepted"] == len(records) and response.json["rejected"] == 0
    assert records[0]["kubernetes"].keys() >= {"namespace_name", "pod_name", "container_name"}


# --- Prometheus and Grafana ---


def _exposed_metric_names() -> set[str]:
    """Every series name the API and the workers can expose, from their own registries."""
    names: set[str] = set()
    registries = (ApiMetrics(lambda: QueueStatus(1, 0, 0)).registry, WorkerMetrics().registry)
    for registry in registries:
        for line in generate_latest(registry).decode().splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                names.add(name)
                if kind == "counter" and not name.endswith("_total"):
                    names.add(name + "_total")
                if kind == "histogram":
                    names |= {name + suffix for suffix in ("_bucket", "_sum", "_count")}
            elif line and not line.startswith("#"):
                names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group())
    return names


def _metric_names(promql: str) -> set[str]:
    return set(re.findall(r"\blogserver_[A-Za-z0-9_]+", promql))


@pytest.fixture(scope="module")
def exposed() -> set[str]:
    return _exposed_metric_names()


@pytest.fixture(scope="module")
def rules() -> list[dict]:
    (document,) = _documents(PROMETHEUS / "rules.yml")
    return [rule for group in document["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def dashboard_expressions() -> list[str]:
    dashboard = json.loads((PROMETHEUS / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            expressions.append(variable["definition"])
    return expressions


def test_exposed_metric_names_include_the_documented_series(exposed):
    # Guards the helper above: the README's names, with the exposition suffixes.
    assert {"logserver_http_requests_total", "logserver_queue_depth", "logserver_redis_up",
            "logserver_worker_lag_seconds_bucket", "logserver_worker_last_write_timestamp_seconds"} <= exposed


def test_every_metric_in_the_alerting_rules_is_exposed(rules, exposed):
    used = set().union(*(_metric_names(rule["expr"]) for rule in rules))
    assert used, "no logserver_ metric found in rules.yml"
    assert not used - exposed, f"rules.yml uses metrics nothing exposes: {sorted(used - exposed)}"


def test_every_metric_in_the_dashboard_is_exposed(dashboard_expressions, exposed):
    used = set().union(*(_metric_names(expr) for expr in dashboard_expressions))
    assert used, "no logserver_ metric found in the dashboard"
    assert not used - exposed, f"the dashboard uses metrics nothing exposes: {sorted(used - exposed)}"


def test_dashboard_panels_have_unique_ids():
    dashboard = json.loads((PROMETHEUS / "grafana-dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_queue_full_alert_fires_at_the_api_high_water_mark(rules):
    by_name = {rule.get("alert"): rule for rule in rules}
    (full,) = re.findall(r">=\s*(\d+)\s*$", by_name["LogserverQueueFull"]["expr"])
    (high,) = re.findall(r">\s*(\d+)\s*$", by_name["LogserverQueueDepthHigh"]["expr"])
    assert int(full) == Settings().queue_high_water_mark
    assert int(high) < int(full)


def test_rules_name_only_the_scrape_jobs(rules):
    (config,) = _documents(PROMETHEUS / "scrape-config.yml")
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    for rule in rules:
        for operator, value in re.findall(r'\bjob\s*(=~|=)\s*"([^"]*)"', rule["expr"]):
            matched = {job for job in jobs if re.fullmatch(value, job)} if operator == "=~" else {value} & jobs
            assert matched, f"{rule['alert']}: job {operator}{value!r} matches no scrape job of {sorted(jobs)}"


def test_scrape_config_loads_the_rules_file():
    (config,) = _documents(PROMETHEUS / "scrape-config.yml")
    assert config["rule_files"] == ["rules.yml"]


def _kept_ports(job: dict, objects: list[dict]) -> set[tuple[str, int]]:
    """(Deployment, container port) pairs that a `role: pod` job keeps after its keep rules."""
    kept = set()
    for workload in _workloads(objects):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        for container in _pod_spec(workload)["containers"]:
            for port in container.get("ports", []):
                meta = {"__meta_kubernetes_pod_label_" + re.sub(r"[^A-Za-z0-9_]", "_", k): v for k, v in labels.items()}
                meta["__meta_kubernetes_pod_container_port_name"] = port.get("name", "")
                meta["__meta_kubernetes_namespace"] = workload["metadata"]["namespace"]
                keep = all(
                    re.fullmatch(rule["regex"], rule.get("separator", ";").join(meta.get(s, "") for s in rule["source_labels"]))
                    for rule in job["relabel_configs"] if rule.get("action") == "keep"
                )
                if keep:
                    kept.add((workload["metadata"]["name"], port["containerPort"]))
    return kept


@pytest.mark.parametrize("job_name,expected", [
    ("kube-insight-logserver-api", (API, Settings().port)),
    ("kube-insight-logserver-worker", (WORKER, Settings().worker_metrics_port)),
])
def test_scrape_job_keeps_exactly_the_metrics_port(objects, job_name, expected):
    (config,) = _documents(PROMETHEUS / "scrape-config.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == job_name]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (sd,) = job["kubernetes_sd_configs"]
    assert sd["role"] == "pod" and sd["namespaces"]["names"] == [_namespace(objects)]
    assert _kept_ports(job, objects) == {expected}
