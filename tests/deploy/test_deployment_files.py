"""The Dockerfile and docker-compose.yml agree with the code: option names, subcommands, ports.

No Docker engine is needed: the files are read and checked against common.settings, the CLI's
parser and pyproject.toml.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from cli.main import _parser
from common.settings import OPTIONS, Settings, build_settings, example_secrets, options_for

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"
OUR_SERVICES = ("api", "worker")


# --- reading the files ---


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, arguments = full.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return _instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final_stage(dockerfile) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(dockerfile) if keyword == "FROM")
    return dockerfile[last_from:]


def _last(instructions: list[tuple[str, str]], keyword: str) -> str:
    values = [arguments for kw, arguments in instructions if kw == keyword]
    assert values, f"the Dockerfile's final stage has no {keyword}"
    return values[-1]


def _exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def _interpolate(value: str, shell_env: dict[str, str]) -> str:
    """Compose's ${VAR:-default} (unset or empty), ${VAR-default} (unset), ${VAR} and $$."""
    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, default = match.group(1), match.group(2), match.group(3) or ""
        if name not in shell_env or (operator == ":-" and not shell_env[name]):
            return default
        return shell_env[name]
    return re.sub(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}", one, value)


def _environment(service: dict, shell_env: dict[str, str] | None = None) -> dict[str, str]:
    """A service's environment as compose hands it over, for `docker compose up` run in shell_env."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: _interpolate("" if value is None else str(value), shell_env or {}) for key, value in env.items()}


def _command(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _container_ports(entries: list) -> set[int]:
    """Container-side port numbers of compose `ports:` or `expose:` entries (short or long form)."""
    ports = set()
    for entry in entries:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


# --- docker-compose.yml ---


def test_compose_has_no_obsolete_version_key(compose):
    assert "version" not in compose


def test_compose_defines_the_four_services(compose):
    assert set(compose["services"]) >= {"redis", "cassandra", "api", "worker"}


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_compose_builds_our_services_from_the_repository_root(compose, service):
    build = compose["services"][service]["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert context in (".", "./")


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_every_compose_environment_variable_is_a_real_option(compose, service):
    known = {option.env for option in OPTIONS}
    unknown = set(_environment(compose["services"][service])) - known
    assert not unknown, f"{service} sets variables no option reads: {sorted(unknown)}"


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_compose_environment_values_are_accepted_by_the_settings(compose, service):
    environment = _environment(compose["services"][service])
    settings = build_settings({}, environment, scope=service)
    read = [option for option in options_for(service) if option.env in environment]
    assert read, f"{service} sets none of its options"
    assert {o.env: getattr(settings, o.field) for o in read} == {o.env: o.parse(environment[o.env]) for o in read}


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_compose_points_our_services_at_the_redis_and_cassandra_services(compose, service):
    settings = build_settings({}, _environment(compose["services"][service]), scope=service)
    assert settings.redis_url.startswith("redis://redis:")
    assert settings.cassandra_hosts == ("cassandra",)


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_compose_command_is_the_cli_subcommand_of_the_same_name(compose, service):
    command = _command(compose["services"][service])
    assert command[0] == service
    assert _parser().parse_args(command).command == service


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_our_services_wait_for_healthy_redis_and_cassandra(compose, service):
    depends_on = compose["services"][service]["depends_on"]
    assert isinstance(depends_on, dict), "use the long form, with a condition"
    for dependency in ("redis", "cassandra"):
        assert depends_on[dependency]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["redis", "cassandra"])
def test_dependencies_have_a_healthcheck(compose, service):
    test = compose["services"][service]["healthcheck"]["test"]
    assert test and test != ["NONE"]


def test_compose_publishes_the_api_port_from_settings(compose):
    api = compose["services"]["api"]
    port = Settings().port
    assert f"{port}:{port}" in [str(entry) for entry in api["ports"]]
    assert build_settings({}, _environment(api), scope="api").port == port


def test_compose_worker_metrics_port_matches_settings(compose):
    worker = compose["services"]["worker"]
    settings = build_settings({}, _environment(worker), scope="worker")
    assert settings.worker_metrics_port == Settings().worker_metrics_port
    assert Settings().worker_metrics_port in _container_ports(worker.get("expose", []))


def test_compose_runs_at_least_two_workers(compose):
    assert compose["services"]["worker"]["deploy"]["replicas"] >= 2


def test_compose_worker_publishes_no_fixed_host_port(compose):
    # Two replicas cannot both bind the same host port.
    assert not compose["services"]["worker"].get("ports")


def test_compose_redis_keeps_queued_batches(compose):
    command = _command(compose["services"]["redis"])
    assert command[0] == "redis-server"
    flags = dict(zip(command[1::2], command[2::2]))
    assert flags["--appendonly"] == "yes"
    assert flags["--maxmemory-policy"] == "noeviction"
    assert flags.get("--maxmemory"), "noeviction only takes effect with a maxmemory limit"


def test_compose_redis_fsyncs_every_acknowledged_batch_unless_told_otherwise(compose):
    command = _command(compose["services"]["redis"])
    policy = dict(zip(command[1::2], command[2::2]))["--appendfsync"]
    assert policy == "${REDIS_APPENDFSYNC:-always}"


def test_the_local_stack_fsyncs_every_acknowledged_batch_unless_told_otherwise():
    assert '--appendfsync "$fsync"' in (ROOT / "scripts" / "stack.sh").read_text()
    assert "fsync=${REDIS_APPENDFSYNC:-always}" in (ROOT / "scripts" / "stack.sh").read_text()


@pytest.mark.parametrize("service,mount", [("redis", "/data"), ("cassandra", "/var/lib/cassandra")])
def test_compose_stores_data_in_named_volumes(compose, service, mount):
    volumes = [str(v) for v in compose["services"][service]["volumes"]]
    sources = [v.split(":")[0] for v in volumes if v.split(":")[1] == mount]
    assert sources and sources[0] in (compose.get("volumes") or {})


# --- Dockerfile ---


def test_dockerfile_starts_from_python_311_slim(final_stage):
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", _last(final_stage, "FROM").split()[0])


def test_dockerfile_runs_as_a_non_root_user(final_stage):
    user = _last(final_stage, "USER").split(":")[0]
    assert user not in ("root", "0")


def test_dockerfile_entrypoint_is_the_console_script(final_stage, pyproject):
    entrypoint = _exec_form(_last(final_stage, "ENTRYPOINT"))
    assert entrypoint == ["kube-insight-logserver"]
    assert entrypoint[0] in pyproject["project"]["scripts"]


def test_dockerfile_default_command_is_a_cli_subcommand(final_stage):
    command = _exec_form(_last(final_stage, "CMD"))
    assert command == ["api"]
    assert _parser().parse_args(command).command == "api"


def test_dockerfile_exposes_the_api_and_worker_metrics_ports(final_stage):
    exposed = {int(port.split("/")[0]) for kw, args in final_stage if kw == "EXPOSE" for port in args.split()}
    assert {Settings().port, Settings().worker_metrics_port} <= exposed


def test_dockerfile_copies_what_the_package_build_needs(dockerfile, pyproject):
    copied = set()
    for keyword, arguments in dockerfile:
        if keyword == "COPY" and not arguments.startswith("--from"):
            copied.update(part.rstrip("/") for part in arguments.split()[:-1])
    packages = {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    # The compiled extensions' crates (setuptools-rust), e.g. native/ for native/Cargo.toml.
    crates = {str(Path(ext["path"]).parent / part) for ext in pyproject["tool"]["setuptools-rust"]["ext-modules"]
              for part in ("Cargo.toml", "Cargo.lock", "src")}
    assert {"pyproject.toml", pyproject["project"]["readme"]} | packages | crates <= copied


def test_dockerfile_builds_the_compiled_extension_with_a_pinned_rust(dockerfile):
    build_stage = dockerfile[:max(i for i, (keyword, _) in enumerate(dockerfile) if keyword == "FROM")]
    rust_images = [args for keyword, args in build_stage if keyword in ("FROM", "COPY") and "rust:" in args]
    assert rust_images and all(re.search(r"rust:\d+\.\d+\.\d+-slim", args) for args in rust_images)
    assert any(keyword == "ENV" and "cargo/bin" in args for keyword, args in build_stage)


# --- docker-compose.yml: secrets and networks ---


def _networks(service: dict) -> set[str]:
    networks = service.get("networks") or ["default"]
    return set(networks) if isinstance(networks, list) else set(networks)


def _redis_flags(compose: dict, shell_env: dict[str, str]) -> dict[str, str]:
    command = [_interpolate(part, shell_env) for part in _command(compose["services"]["redis"])]
    return dict(zip(command[1::2], command[2::2]))


def test_compose_redis_requires_the_password_api_and_worker_use(compose):
    password = _redis_flags(compose, {})["--requirepass"]
    assert password
    for service in OUR_SERVICES:
        assert build_settings({}, _environment(compose["services"][service]), scope=service).redis_password == password


def test_compose_redis_password_is_taken_from_the_environment(compose):
    shell = {"REDIS_PASSWORD": "my-own"}
    assert _redis_flags(compose, shell)["--requirepass"] == "my-own"
    assert _environment(compose["services"]["worker"], shell)["REDIS_PASSWORD"] == "my-own"


def test_compose_redis_healthcheck_authenticates(compose):
    redis = compose["services"]["redis"]
    test = redis["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert _interpolate(test[1], {}) == 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping | grep -q PONG'
    assert _environment(redis)["REDIS_PASSWORD"] == _redis_flags(compose, {})["--requirepass"]


def test_compose_api_requires_both_tokens_and_the_defaults_are_marked_as_examples(compose):
    settings = build_settings({}, _environment(compose["services"]["api"]), scope="api")
    assert settings.ingest_token and settings.query_token
    assert example_secrets(settings) == ["INGEST_TOKEN", "QUERY_TOKEN", "REDIS_PASSWORD"]


def test_compose_tokens_are_turned_off_by_an_empty_variable(compose):
    shell = {"INGEST_TOKEN": "", "QUERY_TOKEN": ""}
    settings = build_settings({}, _environment(compose["services"]["api"], shell), scope="api")
    assert (settings.ingest_token, settings.query_token) == ("", "")


def test_compose_fluent_bit_gets_the_ingest_token_of_the_api(compose):
    for shell in ({}, {"INGEST_TOKEN": "mine"}):
        fluent_bit = _environment(compose["services"]["fluent-bit"], shell)
        assert fluent_bit["INGEST_TOKEN"] == _environment(compose["services"]["api"], shell)["INGEST_TOKEN"]


def test_compose_only_api_and_worker_share_a_network_with_redis_and_cassandra(compose):
    services = compose["services"]
    for dependency in ("redis", "cassandra"):
        neighbours = {name for name, service in services.items()
                      if name != dependency and _networks(service) & _networks(services[dependency])}
        assert neighbours == {"api", "worker"}, dependency
        assert all(compose["networks"][n].get("internal") for n in _networks(services[dependency]))


def test_compose_fluent_bit_reaches_only_the_api(compose):
    services = compose["services"]
    neighbours = {name for name, service in services.items()
                  if name != "fluent-bit" and _networks(service) & _networks(services["fluent-bit"])}
    assert neighbours == {"api"}
