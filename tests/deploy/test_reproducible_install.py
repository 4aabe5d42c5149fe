"""Installs are reproducible: every dependency comes from a lock with exact versions and hashes, and
every base image has an exact version. A floating range or tag would let a release made after the
last green run change what the same commit installs (msgspec 0.23 did)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
SERVICE_LOCK = ROOT / "requirements.lock"
TEST_LOCK = ROOT / "requirements-test.lock"
# An exact image version: a tag with at least major.minor.patch (or a digest).
EXACT_IMAGE = re.compile(r"[\w./-]+(:\d+\.\d+\.\d+[\w.-]*|@sha256:[0-9a-f]{64})")


def _locked(path: Path) -> dict[str, str]:
    """name -> version of every requirement in a lock, each asserted to be pinned with hashes."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", path.read_text().split("\n", 1)[1])
    pins = {}
    for entry in entries:
        if entry.startswith("#") or not entry.strip():
            continue
        head = entry.split("\\", 1)[0].strip()
        requirement = Requirement(head)
        assert len(requirement.specifier) == 1 and next(iter(requirement.specifier)).operator == "==", head
        assert "--hash=sha256:" in entry, f"{head} has no hash"
        pins[canonicalize_name(requirement.name)] = next(iter(requirement.specifier)).version
    return pins


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("lock", [SERVICE_LOCK, TEST_LOCK], ids=lambda p: p.name)
def test_every_locked_requirement_is_exact_and_hashed(lock):
    assert _locked(lock)


@pytest.mark.parametrize(("lock", "extras"), [(SERVICE_LOCK, ()), (TEST_LOCK, ("test",))], ids=["service", "test"])
def test_the_lock_holds_every_declared_dependency_within_its_range(project, lock, extras):
    pins = _locked(lock)
    declared = [Requirement(r) for r in project["dependencies"]]
    declared += [Requirement(r) for extra in extras for r in project["optional-dependencies"][extra]]
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not locked in {lock.name}: run make lock"
        assert requirement.specifier.contains(pins[name]), f"{lock.name} has {name}=={pins[name]}, outside {requirement}"


def test_the_tests_run_on_exactly_the_service_versions():
    service, test = _locked(SERVICE_LOCK), _locked(TEST_LOCK)
    assert {name: test.get(name) for name in service} == service


def test_the_install_script_takes_the_lock_with_hashes_and_resolves_nothing():
    script = (ROOT / "scripts" / "install.sh").read_text()
    assert "--require-hashes --no-deps -r requirements-test.lock" in script
    assert "--no-deps --no-build-isolation -e ." in script


def test_the_dockerfile_installs_the_service_lock_with_hashes_and_resolves_nothing():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock" in dockerfile
    assert "pip install --require-hashes --no-deps -r requirements.lock" in dockerfile
    installs = re.findall(r"pip install [^\n&]*", dockerfile)
    assert all("--no-deps" in line for line in installs), installs


def test_every_dockerfile_base_image_has_an_exact_version():
    images = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert images and all(EXACT_IMAGE.fullmatch(image) for image in images), images


def _compose_and_manifest_images() -> list[str]:
    images = [s["image"] for s in yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"].values()
              if "image" in s]
    for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
        images += re.findall(r"^\s*image:\s*(\S+)", path.read_text(), re.MULTILINE)
    return images


@pytest.mark.parametrize("image", _compose_and_manifest_images())
def test_every_third_party_image_has_an_exact_version(image):
    if image.startswith("kube-insight-logserver"):
        return  # our own image, built from this repository's Dockerfile
    assert EXACT_IMAGE.fullmatch(image), f"{image} floats: pin an exact version"


def test_make_lock_refreshes_both_locks():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lock:\n\tscripts/lock\.sh", makefile, re.MULTILINE)
    script = (ROOT / "scripts" / "lock.sh").read_text()
    assert "--output-file requirements.lock" in script and "--output-file requirements-test.lock" in script
