"""compose.yaml and deploy/k8s agree with deploy/nats, the NATS roles and the services' settings.

Docker and Kubernetes cannot run here: these tests parse the files and check what would have to
hold for them to run — 3 routed JetStream nodes fsyncing every write, the same users as
services/security/nats_auth.py, every service role started as `trial-ledger serve <role>` with
LEDGER_* variables that services/config/settings.py actually reads, and more than one writer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli.deploy_secrets import write_secrets
from services.config.settings import Settings
from services.security.nats_auth import (
    SERVICE_ROLES,
    all_roles,
    env_nkey,
    public_key,
    seed_file_name,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
NATS = ROOT / "deploy" / "nats"
K8S = ROOT / "deploy" / "k8s"
ROLES = ("writer", "projector", "alerter", "api")
DEPLOYED_SITES = ("site01", "site02")  # the sites authorization.conf carries
CLIENT_PORT = 4222


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def k8s_documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    documents: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        documents.extend(d for d in yaml.safe_load_all((K8S / resource).read_text()) if d)
    return documents


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}"
    return found[0]


def example_secret(name: str) -> dict[str, str]:
    docs = yaml.safe_load_all((K8S / "secret.example.yaml").read_text())
    return next(d["stringData"] for d in docs if d["metadata"]["name"] == name)


def password_variables() -> set[str]:
    """The `$VAR` public nkeys deploy/nats/authorization.conf reads, one per NATS user."""
    text = (NATS / "authorization.conf").read_text()
    return set(re.findall(r"\{ nkey: \$(\w+), permissions", text))


def expected_password_variables() -> set[str]:
    return {env_nkey(role).lstrip("$") for role in all_roles(DEPLOYED_SITES)}


def node_config(number: int) -> str:
    return (NATS / "cluster" / f"nats-{number}.conf").read_text()


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return {str(k): str(v) for k, v in env.items()}


def known_variables() -> set[str]:
    """Every LEDGER_* name the services read (settings.py and system.py), credentials included."""
    source = "".join(
        (ROOT / "services" / name).read_text()
        for name in ("config/settings.py", "runtime/system.py")
    )
    names = set(re.findall(r'"(LEDGER_[A-Z_]+)"', source)) - {"LEDGER_CREDS_"}
    return names | {"LEDGER_CREDS_" + role.upper() for role in SERVICE_ROLES}


# -- the NATS cluster ---------------------------------------------------------------------------


def test_the_deploy_files_name_the_same_nats_users_as_the_roles_module() -> None:
    assert password_variables() == expected_password_variables()


@pytest.mark.parametrize("number", [1, 2, 3])
def test_each_cluster_node_routes_to_all_three_and_fsyncs_every_write(number: int) -> None:
    conf = node_config(number)
    assert f"server_name: ledger-nats-{number}" in conf
    assert f"listen: 0.0.0.0:{CLIENT_PORT}" in conf
    routes = re.findall(r"nats-route://([\w-]+):(\d+)", conf)
    assert routes == [(f"ledger-nats-{n}", "6222") for n in (1, 2, 3)]
    assert "listen: 0.0.0.0:6222" in conf
    jetstream = re.search(r"jetstream \{(.*?)\}", conf, re.S)
    assert jetstream and re.search(r"^\s*sync_interval: always\s*$", jetstream.group(1), re.M)
    assert "include ../authorization.conf" in conf


@pytest.mark.parametrize("number", [1, 2, 3])
def test_compose_runs_each_node_from_its_deploy_config_under_its_route_name(number: int) -> None:
    node = compose()["services"][f"nats-{number}"]
    assert node["command"] == ["-c", f"/etc/nats/cluster/nats-{number}.conf"]
    assert "./deploy/nats:/etc/nats:ro" in node["volumes"]
    assert any(v.endswith(":/data") for v in node["volumes"])  # store_dir "/data/jetstream"
    assert node["networks"]["ledger"]["aliases"] == [f"ledger-nats-{number}"]
    assert set(environment(node)) == expected_password_variables()


def test_compose_has_exactly_three_nats_nodes() -> None:
    nodes = [
        name
        for name, s in compose()["services"].items()
        if str(s.get("image", "")).startswith("nats:")
    ]
    assert sorted(nodes) == ["nats-1", "nats-2", "nats-3"]


# -- the services -------------------------------------------------------------------------------


def test_the_image_runs_the_trial_ledger_command() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert 'ENTRYPOINT ["trial-ledger"]' in dockerfile
    assert "pip install ." in dockerfile


@pytest.mark.parametrize("role", ROLES)
def test_compose_runs_every_role_as_trial_ledger_serve_with_settings_it_reads(
    role: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    services = compose()["services"]
    service = services[role]
    assert service["image"] == services["provision"]["image"] and service["build"] == "."
    assert service["command"][:2] == ["serve", role]
    env = environment(service)
    assert set(env) <= known_variables(), set(env) - known_variables()
    urls = env["LEDGER_NATS_URL"].split(",")
    assert urls == [f"nats://ledger-nats-{n}:{CLIENT_PORT}" for n in (1, 2, 3)]
    creds = env[f"LEDGER_CREDS_{role.upper()}"]
    secret = creds.removeprefix("/run/secrets/")
    assert secret in service["secrets"]
    assert compose()["secrets"][secret]["file"] == f"./deploy/secrets/{seed_file_name(role)}"
    assert service["depends_on"]["provision"]["condition"] == "service_completed_successfully"
    for name in list(env):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(tmp_path)
    assert settings.nats_url == env["LEDGER_NATS_URL"]
    assert settings.creds_for(role) == creds
    if role in ("projector", "api"):
        assert settings.database_url and settings.database_url.startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in settings.database_url


def test_compose_runs_more_than_one_writer_with_its_signing_key() -> None:
    writer = compose()["services"]["writer"]
    assert writer["deploy"]["replicas"] >= 2
    assert environment(writer)["LEDGER_WRITER_KEY"] == "/run/secrets/writer_ed25519"


def test_compose_creates_the_streams_as_admin_before_any_service() -> None:
    provision = compose()["services"]["provision"]
    assert provision["entrypoint"] == ["python", "-m", "services.cli.provision"]
    assert (ROOT / "services" / "cli" / "provision.py").exists()
    assert environment(provision)["LEDGER_CREDS_ADMIN"] == "/run/secrets/admin.nk"
    assert {f"nats-{n}" for n in (1, 2, 3)} <= set(provision["depends_on"])


def test_the_read_models_are_migrated_before_the_api_which_only_reads() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["entrypoint"] == ["python", "-m", "services.db.migrate"]
    assert migrate["restart"] == "no" and "LEDGER_DATABASE_URL" in environment(migrate)
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    spec = k8s_object("Deployment", "ledger-api")["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    assert init["command"] == ["python", "-m", "services.db.migrate"]
    assert (
        "@ledger-postgres:5432/"
        in {e["name"]: e for e in init["env"]}["LEDGER_DATABASE_URL"]["value"]
    )


def test_compose_postgresql_keeps_fsync_on() -> None:
    postgres = compose()["services"]["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "fsync=on" in postgres["command"] and "fsync=off" not in postgres["command"]


def test_the_secrets_generator_writes_every_file_compose_mounts_with_matching_public_keys(
    tmp_path: Path,
) -> None:
    env = write_secrets(tmp_path / "secrets", DEPLOYED_SITES)
    assert set(env) == expected_password_variables() | {"POSTGRES_PASSWORD"}
    for definition in compose()["secrets"].values():
        assert (tmp_path / "secrets" / Path(definition["file"]).name).exists(), definition
    for role in all_roles(DEPLOYED_SITES):
        seed = tmp_path / "secrets" / seed_file_name(role)
        assert seed.read_text().startswith("SU")  # a standard nkey user seed
        assert env[env_nkey(role).lstrip("$")] == public_key(seed)
    assert '"api_tokens"' in (tmp_path / "secrets" / "runtime.json").read_text()
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    again = write_secrets(tmp_path / "secrets", DEPLOYED_SITES)
    assert again == env  # kept: running it twice never changes a deployed identity


# -- Kubernetes ---------------------------------------------------------------------------------


def test_the_helm_values_make_a_three_node_jetstream_cluster_that_fsyncs_every_write() -> None:
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    config = values["config"]
    assert config["cluster"]["enabled"] is True and config["cluster"]["replicas"] == 3
    assert config["jetstream"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["pvc"]["enabled"] is True
    assert config["jetstream"]["merge"]["sync_interval"] == "always"


def test_the_helm_values_load_the_deploy_authorization_with_its_passwords() -> None:
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    include = values["config"]["merge"]["$include"]
    mount = values["container"]["patch"][0]["value"]
    assert include == f"{Path(mount['mountPath']).name}/authorization.conf"
    assert mount["mountPath"].startswith("/etc/nats-config/")
    volume = values["podTemplate"]["patch"][0]["value"]
    assert volume["name"] == mount["name"]
    assert volume["configMap"]["name"] == "ledger-nats-authorization"
    env = values["container"]["env"]
    assert set(env) == expected_password_variables()
    passwords = example_secret("ledger-nats-passwords")
    for name, source in env.items():
        ref = source["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "ledger-nats-passwords", "key": name}
        assert name in passwords


def test_the_example_secrets_name_a_seed_and_a_public_key_for_every_service_role() -> None:
    public_keys = example_secret("ledger-nats-passwords")
    credentials = example_secret("ledger-credentials")
    for role in ("admin", *ROLES):
        assert seed_file_name(role) in credentials
        assert env_nkey(role).lstrip("$") in public_keys


def test_kubernetes_lists_every_nats_pod_for_the_services() -> None:
    config = k8s_object("ConfigMap", "ledger-config")["data"]
    assert set(config) <= known_variables()
    assert config["LEDGER_NATS_URL"].split(",") == [
        f"nats://ledger-nats-{n}.ledger-nats-headless:{CLIENT_PORT}" for n in (0, 1, 2)
    ]


def _container(kind: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = k8s_object(kind, name)["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1
    return spec, spec["containers"][0]


@pytest.mark.parametrize("role", ROLES)
def test_kubernetes_runs_every_role_as_trial_ledger_serve_with_its_credentials(role: str) -> None:
    deployment = k8s_object("Deployment", f"ledger-{role}")
    spec, container = _container("Deployment", f"ledger-{role}")
    assert container["image"] == compose()["services"][role]["image"]
    assert container["command"] == ["trial-ledger"] and container["args"][:2] == ["serve", role]
    assert container["envFrom"] == [{"configMapRef": {"name": "ledger-config"}}]
    env = {e["name"]: e for e in container["env"]}
    names = set(env) - {"POSTGRES_PASSWORD"}  # only spelled into LEDGER_DATABASE_URL
    assert names <= known_variables(), names - known_variables()
    creds = Path(env[f"LEDGER_CREDS_{role.upper()}"]["value"])
    mounts = {m["name"]: m for m in container["volumeMounts"] if "subPath" not in m}
    volumes = {v["name"]: v for v in spec["volumes"]}
    mount = next(m for m in mounts.values() if creds.parent == Path(m["mountPath"]))
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == "ledger-credentials"
    assert {"key": creds.name, "path": creds.name} in secret["items"]
    assert creds.name in example_secret("ledger-credentials")
    if "LEDGER_DATABASE_URL" in env:
        assert "@ledger-postgres:5432/" in env["LEDGER_DATABASE_URL"]["value"]
    assert deployment["spec"]["replicas"] >= (2 if role == "writer" else 1)


def test_kubernetes_creates_the_streams_as_admin_and_keeps_postgresql_fsync_on() -> None:
    _, provision = _container("Job", "ledger-provision")
    assert provision["command"] == ["python", "-m", "services.cli.provision"]
    assert {"name": "LEDGER_CREDS_ADMIN", "value": "/etc/ledger/admin.nk"} in provision["env"]
    _, postgres = _container("StatefulSet", "ledger-postgres")
    assert "fsync=on" in postgres["args"]
    assert k8s_object("Service", "ledger-api")["spec"]["ports"][0]["targetPort"] == "http"
