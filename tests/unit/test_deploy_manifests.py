"""The production deployment, checked offline: the compose file against the Compose
Specification's JSON Schema, the Kubernetes manifests (each overlay rendered by kustomize)
against the Kubernetes API schemas (kubernetes-validate), and both against the code: every
setting the containers need is given and is one the code reads, every image is pinned, ports
and probe paths are the ones the processes serve, workers never outnumber partitions, and the
grace period outlasts a worker's drain.

No Docker engine or cluster runs here (docs/operations.md): these checks are what can be
proved without one. The schema is vendored in deploy/schemas/ with its licence.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from twin.api.probes import PROBE_SECONDS
from twin.settings import KafkaSecurity, Settings, Topics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "k8s" / "overlays").iterdir() if p.is_dir())
KUBERNETES_VERSION = "1.33.0"
TWIN_IMAGE = "fleet-twin"
PENDING_SETTINGS = {"TWIN_ALERTMANAGER_URL", "TWIN_GRAFANA_URL"}
"""Settings of the alert engine (issue 11), on another branch: given to the containers under their agreed
names before the code that reads them is merged. Once a settings class reads them, they are checked like
the rest (and the names here are then simply known)."""
API_PORT, API_PROBES = 8080, ("/healthz", "/readyz")
"""The API's port and its (liveness, readiness) probe paths (twin/api/probes.py, no token). Checked
against the API's own routes; compose's one health check is the readiness one."""


# -- what the code reads --------------------------------------------------------------------------


def _settings_classes() -> list[type[BaseSettings]]:
    """Every settings class in our packages (each reads its own TWIN_* variables): found by importing
    every module, so that a branch that adds one (the API's, the alert engine's) is checked too."""
    for package in ("twin", "streams"):
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    found, todo = [], list(BaseSettings.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith(("twin.", "streams.")) and "env_prefix" in cls.model_config:
            found.append(cls)
    return found


@cache
def settings_fields() -> dict[str, Any]:
    """Every TWIN_* variable that names a setting, with its field (nested settings are read on their own)."""
    names: dict[str, Any] = {}
    for cls in _settings_classes():
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, info in cls.model_fields.items():
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings):
                continue
            names[f"{prefix}{name}".upper()] = info
    return names


@cache
def known_settings() -> dict[str, Any]:
    """Every TWIN_* variable the code reads: each setting, its *_FILE, TWIN_SECRETS_DIR, and any other
    variable the code names itself (a command's `envvar=`, such as TWIN_LOG_LEVEL or a token)."""
    known: dict[str, Any] = dict.fromkeys(_named_in_code())
    known |= settings_fields() | {f"{name}_FILE": info for name, info in settings_fields().items()}
    known["TWIN_SECRETS_DIR"] = None
    return known


def _named_in_code() -> set[str]:
    return {name for package in ("twin", "streams") for path in (REPO / package).rglob("*.py")
            for name in re.findall(r"[\"'](TWIN_[A-Z0-9_]*[A-Z0-9])[\"']", path.read_text())}


def _needs_a_value_in_a_container(name: str, info: Any) -> bool:
    """A default that points at this machine's loopback is wrong in any container."""
    default = info.get_default(call_default_factory=True) if info is not None else None
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    return isinstance(default, str) and bool(re.search(r"127\.0\.0\.1|localhost", default))


# -- the compose file -------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _interpolated(value: str) -> str:
    """A compose value with ${NAME:-default} replaced by its default (what runs without a .env)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))


def _twin_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose()["services"].items() if s.get("image", "").startswith(f"{TWIN_IMAGE}:")}


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose())]
    assert not errors, "\n".join(errors)
    # The validator is not asleep: a mistyped key is refused.
    broken = {**compose(), "services": {**compose()["services"], "worker": {**compose()["services"]["worker"],
                                                                             "healthcheck": {"tset": ["CMD"]}}}}
    assert list(validator.iter_errors(broken))


def test_compose_runs_every_role_from_the_one_image_with_the_topics_and_migrations_first() -> None:
    services = _twin_services()
    assert {name: s["command"][0] for name, s in services.items()} == {
        "topics": "topics", "migrate": "migrate", "worker": "worker", "api": "api", "collector": "collect",
        "alerts": "alerts", "rollup": "rollup"}
    for name in ("worker", "api", "collector"):
        needs = services[name]["depends_on"]
        assert all(needs[job]["condition"] == "service_completed_successfully" for job in needs if job in
                   ("topics", "migrate")), name
    assert "container_name" not in services["worker"] and "ports" not in services["worker"], \
        "workers scale with --scale: no fixed name or host port"


def test_compose_gives_every_twin_container_the_settings_it_needs_and_only_known_ones() -> None:
    for name, service in _twin_services().items():
        env = {k: _interpolated(v) for k, v in service["environment"].items()}
        unknown = set(env) - set(known_settings()) - PENDING_SETTINGS
        assert not unknown, f"{name}: not a setting the code reads: {sorted(unknown)}"
        missing = [n for n, info in settings_fields().items()
                   if _needs_a_value_in_a_container(n, info) and n not in env and f"{n}_FILE" not in env]
        assert not missing, f"{name}: defaults to loopback, must be set: {missing}"
        for host in (k for k in env if k.endswith("_HOST")):
            assert env[host] == "0.0.0.0", f"{name}: {host} must listen on every interface in a container"
        Settings(**{})  # the settings as a container would build them parse (no secret needed to parse)


def test_compose_keeps_secrets_in_files() -> None:
    for name, service in _twin_services().items():
        env = service["environment"]
        url = _interpolated(env["TWIN_DATABASE_URL"])
        assert not re.search(r"//[^/@]*:[^/@]*@", url) and "password=" not in url, f"{name}: password in the URL"
        for key, value in env.items():
            if key.endswith("_FILE"):
                secret = Path(value).name
                assert secret in service.get("secrets", []), f"{name}: {key} names a secret it does not mount"
                assert secret in compose()["secrets"]
    assert compose()["services"]["timescaledb"]["environment"]["POSTGRES_PASSWORD_FILE"] == \
        "/run/secrets/postgres_password"


def test_compose_health_checks_ask_the_real_endpoints() -> None:
    from streams import app as worker

    services = compose()["services"]
    worker_check = " ".join(services["worker"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{Settings().worker_web_port}{worker.readyz.view_path}" in worker_check
    assert services["worker"]["expose"] == [str(Settings().worker_web_port)]
    api_check = " ".join(services["api"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{API_PORT}{API_PROBES[1]}" in api_check
    assert int(services["api"]["healthcheck"]["timeout"].removesuffix("s")) > 2 * PROBE_SECONDS
    assert services["api"]["ports"] == [f"${{API_PUBLISHED_PORT:-{API_PORT}}}:{API_PORT}"]
    for name in ("kafka", "timescaledb", "grafana", "alertmanager"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


def test_compose_workers_never_outnumber_partitions_by_default() -> None:
    replicas = int(_interpolated(compose()["services"]["worker"]["deploy"]["replicas"]))
    partitions = int(_interpolated(compose()["x-twin-env"]["TWIN_TOPIC_PARTITIONS"]))
    assert 1 <= replicas <= partitions


def test_compose_mounts_the_grafana_and_alertmanager_folders() -> None:
    services = compose()["services"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in services["grafana"]["volumes"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards/fleet-twin:ro" in services["grafana"]["volumes"]
    # Each variable the provisioned data source names is given to Grafana (once deploy/grafana/ is merged).
    datasource = DEPLOY / "grafana" / "provisioning" / "datasources"
    named = set(re.findall(r"\$(TWIN_\w+)", "".join(f.read_text() for f in datasource.glob("*.yaml"))))
    given = set(services["grafana"]["environment"]) | set(re.findall(r"export (TWIN_\w+)=",
                                                                      " ".join(services["grafana"]["entrypoint"])))
    assert named <= given, named - given
    # The dashboards are mounted where the provisioned dashboard provider looks for them.
    mounts = {v.split(":")[1] for v in services["grafana"]["volumes"] if v.startswith("./grafana/dashboards:")}
    for provider_file in (DEPLOY / "grafana" / "provisioning" / "dashboards").glob("*.yaml"):
        for provider in yaml.safe_load(provider_file.read_text())["providers"]:
            assert provider["options"]["path"] in mounts, (provider_file.name, provider["options"]["path"], mounts)
    assert "./alertmanager:/etc/alertmanager:ro" in services["alertmanager"]["volumes"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in services["alertmanager"]["command"]


# -- the Kubernetes manifests ---------------------------------------------------------------------------


@cache
def rendered(overlay: str) -> list[dict[str, Any]]:
    """The overlay as kustomize builds it (kubectl's built-in kustomize; scripts/bootstrap installs kubectl)."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed: scripts/bootstrap installs it"
    out = subprocess.run([kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def _one(overlay: str, kind: str, name: str) -> dict[str, Any]:
    [found] = [r for r in rendered(overlay) if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def _config(overlay: str) -> dict[str, str]:
    return _one(overlay, "ConfigMap", "twin-config")["data"]


def _containers(overlay: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for r in rendered(overlay):
        if r["kind"] in ("Deployment", "Job"):
            out += [(r["metadata"]["name"], c) for c in r["spec"]["template"]["spec"]["containers"]]
    return out


def test_there_are_overlays_to_check() -> None:
    assert {"dev", "production"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_follows_the_kubernetes_api_schema(overlay: str) -> None:
    failures = []
    for resource in rendered(overlay):
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
            failures.append(f"{resource['kind']}/{resource['metadata']['name']}: {exc.message}")
    assert not failures, "\n".join(failures)
    kinds = {r["kind"] for r in rendered(overlay)}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "Job"} <= kinds


def test_the_validator_refuses_a_wrong_manifest() -> None:
    broken = json.loads(json.dumps(_one("dev", "Deployment", "twin-worker")))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {"not": "a port"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_never_outnumber_partitions(overlay: str) -> None:
    worker = _one(overlay, "Deployment", "twin-worker")
    partitions = int(_config(overlay)["TWIN_TOPIC_PARTITIONS"])
    assert 1 <= worker["spec"]["replicas"] <= partitions
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0, "a rollout adds no member beyond them"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_config_map_gives_the_settings_the_containers_need_and_only_known_ones(overlay: str) -> None:
    config = _config(overlay)
    unknown = set(config) - set(known_settings()) - PENDING_SETTINGS
    assert not unknown, f"not a setting the code reads: {sorted(unknown)}"
    missing = [n for n, info in settings_fields().items() if _needs_a_value_in_a_container(n, info) and n not in config]
    assert not missing, f"defaults to loopback, must be set: {missing}"
    assert all(config[k] == "0.0.0.0" for k in config if k.endswith("_HOST"))
    for key in config:
        info = known_settings().get(key)
        if info is not None and info.annotation in (SecretStr, SecretStr | None) and key != "TWIN_DATABASE_URL":
            pytest.fail(f"{key} is a secret: it belongs in the Secret twin-secrets, not in the ConfigMap")
    assert "password" not in config["TWIN_DATABASE_URL"] and not re.search(r"//[^/@]*:[^/@]*@",
                                                                            config["TWIN_DATABASE_URL"])
    # What the settings make of it parses (secrets aside), e.g. the protocol and the mechanism.
    KafkaSecurity.model_validate({k.removeprefix("TWIN_KAFKA_").lower(): v for k, v in config.items()
                                  if k.startswith("TWIN_KAFKA_") and k != "TWIN_KAFKA_BOOTSTRAP"}
                                 | ({"sasl_password": "checked-elsewhere"} if "SASL" in
                                    config.get("TWIN_KAFKA_SECURITY_PROTOCOL", "") else {}))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_gets_the_config_and_the_secrets_folder(overlay: str) -> None:
    secrets_dir = _config(overlay)["TWIN_SECRETS_DIR"]
    for name, container in _containers(overlay):
        assert {"configMapRef": {"name": "twin-config"}} in container["envFrom"], name
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts.get(secrets_dir) == "secrets", f"{name}: secrets not mounted at {secrets_dir}"
        assert mounts.get(_config(overlay)["TWIN_STATE_DIR"]) == "state", f"{name}: no writable state folder"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["limits"]["memory"], name


def test_production_points_the_tls_settings_at_mounted_files() -> None:
    config = _config("production")
    assert config["TWIN_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["TWIN_DATABASE_SSLMODE"] == "verify-full"
    for name, container in _containers("production"):
        mounted = [m["mountPath"] for m in container["volumeMounts"]]
        for key in ("TWIN_KAFKA_SSL_CAFILE", "TWIN_DATABASE_SSLROOTCERT"):
            assert any(config[key].startswith(f"{m}/") for m in mounted), f"{name}: {config[key]} is not mounted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_ports_and_probes_are_what_the_worker_serves(overlay: str) -> None:
    from streams import app as worker

    port = int(_config(overlay)["TWIN_WORKER_WEB_PORT"])
    assert port == Settings().worker_web_port
    pod = _one(overlay, "Deployment", "twin-worker")["spec"]["template"]
    [container] = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"web": port}
    served = {worker.healthz.view_path, worker.readyz.view_path, worker.prometheus_metrics.view_path}
    assert container["livenessProbe"]["httpGet"] == {"path": worker.healthz.view_path, "port": "web"}
    assert container["readinessProbe"]["httpGet"] == {"path": worker.readyz.view_path, "port": "web"}
    assert container["startupProbe"]["httpGet"]["path"] in served
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == worker.prometheus_metrics.view_path
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_ports_probes_and_service_agree(overlay: str) -> None:
    assert int(_config(overlay)["TWIN_API_PORT"]) == API_PORT
    [container] = _one(overlay, "Deployment", "twin-api")["spec"]["template"]["spec"]["containers"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": API_PORT}
    assert (container["livenessProbe"]["httpGet"]["path"], container["readinessProbe"]["httpGet"]["path"]) == API_PROBES
    # /readyz may take PROBE_SECONDS to connect and as long again to answer before it says 503 itself.
    assert container["readinessProbe"]["timeoutSeconds"] > 2 * PROBE_SECONDS
    service = _one(overlay, "Service", "twin-api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == _one(overlay, "Deployment", "twin-api")["spec"]["selector"]["matchLabels"]


def test_api_probe_paths_are_routes_of_the_api() -> None:
    from twin.api import create_app

    # Its OpenAPI document: FastAPI 0.165 keeps included routers whole in `app.routes` (no paths there).
    paths = set(create_app(Settings()).openapi()["paths"])
    assert set(API_PROBES) <= paths, paths
    assert not any(p.startswith("/v1/") for p in API_PROBES), "the probes are outside the versioned API"
    assert Settings().api_port == API_PORT


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_outlasts_a_workers_drain(overlay: str) -> None:
    """A worker's drain: stop fetching, let the batch in flight commit, commit offsets, leave the group.
    mode (under Faust) waits up to `Service.shutdown_timeout` for a service to shut down; the group
    notices a member gone within the session timeout."""
    from mode import Service

    from streams import app as worker

    drain = Service.shutdown_timeout + worker.app.conf.broker_session_timeout
    pod = _one(overlay, "Deployment", "twin-worker")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > drain
    grace = compose()["services"]["worker"]["stop_grace_period"]
    assert int(grace.removesuffix("s")) > drain


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_resources_hold_the_measured_memory(overlay: str) -> None:
    """README "Measured": 433 MB resident at 100,000 twins (target 500 MB)."""
    [container] = _one(overlay, "Deployment", "twin-worker")["spec"]["template"]["spec"]["containers"]
    limit = _mebibytes(container["resources"]["limits"]["memory"])
    request = _mebibytes(container["resources"]["requests"]["memory"])
    assert request * 2**20 >= 433e6 and limit * 2**20 >= 500e6 * 1.5
    assert _one(overlay, "PodDisruptionBudget", "twin-worker")["spec"]["maxUnavailable"] == 1


def _mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


# -- images ------------------------------------------------------------------------------------------

PINNED = re.compile(r"^[\w./-]+(:[\w.-]*\d[\w.-]*)?(@sha256:[0-9a-f]{64})?$")


def _is_pinned(image: str) -> bool:
    """An exact version tag (digits, not `latest` or a bare major) or a digest."""
    if "@sha256:" in image:
        return bool(PINNED.match(image))
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and bool(re.fullmatch(r"v?\d+\.\d+(\.\d+)?([-.][\w.-]+)?", tag))


def _version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_every_image_is_pinned_and_ours_carries_the_project_version() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.M))
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], b)
             for b in re.findall(r"^FROM (\S+)", dockerfile, re.M)]
    images = bases + [s["image"] for s in compose()["services"].values() if not s["image"].startswith(TWIN_IMAGE)]
    for overlay in OVERLAYS:
        images += [c["image"] for _, c in _containers(overlay)]
    unpinned = [i for i in images if not _is_pinned(_interpolated(i))]
    assert not unpinned, unpinned
    assert all(_interpolated(s["image"]) == f"{TWIN_IMAGE}:{_version()}" for s in _twin_services().values())
    assert all(c["image"] == f"{TWIN_IMAGE}:{_version()}" for o in OVERLAYS for _, c in _containers(o))
    assert not _is_pinned("python:latest") and not _is_pinned("python:3") and _is_pinned("python:3.11.14-slim")


def test_the_image_runs_as_an_unprivileged_user_and_serves_the_code_ports() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", dockerfile, re.M)
    assert len(stages) >= 2, "multi-stage: the runtime stage has no build tools"
    runtime = dockerfile.split(f"AS {stages[-1]}", 1)[1]
    user = re.findall(r"^USER (\S+)", runtime, re.M)
    assert user and not user[-1].startswith(("root", "0")), user
    exposed = set(re.findall(r"^EXPOSE (.+)$", runtime, re.M)[0].split())
    assert exposed == {str(Settings().worker_web_port), str(API_PORT)}
    assert re.search(r'^ENTRYPOINT \["twin"\]', runtime, re.M)
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert ignored[0] == "**" and {"!schemas/", "!twin/", "!streams/", "!pyproject.toml"} <= set(ignored)


# -- the operations guide says what the code does ------------------------------------------------------


def test_every_setting_the_guide_and_readme_name_is_one_the_code_reads() -> None:
    text = (REPO / "docs" / "operations.md").read_text() + (REPO / "README.md").read_text()
    named = set(re.findall(r"\bTWIN_[A-Z_]*[A-Z]\b", text)) - {"TWIN_KAFKA_SASL", "TWIN_KAFKA_SSL"}
    named = {n.replace("_*", "") for n in named if not n.startswith("TWIN_GRAFANA_DB_")}  # Grafana's, not ours
    unknown = sorted(n for n in named if n not in known_settings() and n not in PENDING_SETTINGS
                     and not n.endswith("_FILE") and not any(k.startswith(n + "_") for k in known_settings()))
    assert not unknown, unknown


def test_the_guides_topic_table_is_what_the_topics_job_sets() -> None:
    from twin.topics_cli import DAY_MS, TOPIC_CONFIGS

    guide = (REPO / "docs" / "operations.md").read_text()
    topics = Topics()
    for role, config in TOPIC_CONFIGS.items():
        [row] = [line for line in guide.splitlines() if line.startswith(f"| `{getattr(topics, role)}` |")]
        cells = [c.strip() for c in row.split("|")[1:-1]]
        partitions = topics.partition_counts()[getattr(topics, role)]
        assert cells[1] == ("`TWIN_TOPIC_PARTITIONS`" if partitions == topics.partitions and role != "intent"
                            and role != "deadletter" else str(partitions)), row
        assert config["cleanup.policy"] in cells[2], row
        if "retention.ms" in config:
            assert cells[3] == f"{int(config['retention.ms']) // DAY_MS} days", row
        else:
            assert f"{int(config['min.compaction.lag.ms']) // DAY_MS} days" in cells[2], row


def test_the_guides_sizing_matches_the_production_overlay() -> None:
    guide = (REPO / "docs" / "operations.md").read_text()
    [row] = [line for line in guide.splitlines() if line.startswith("| 75,000 (10 GW) |")]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert int(cells[2]) == _one("production", "Deployment", "twin-worker")["spec"]["replicas"]
    assert cells[3] == _config("production")["TWIN_TOPIC_PARTITIONS"]
    [container] = _one("production", "Deployment", "twin-worker")["spec"]["template"]["spec"]["containers"]
    assert cells[4] == f"{container['resources']['requests']['memory']} / {container['resources']['limits']['memory']}" \
        .replace("Mi", " Mi")


def test_every_data_file_the_code_reads_goes_into_the_image() -> None:
    """The image installs the project as a wheel (not editable): a file beside the code that no
    package-data glob names (a migration, a catalog, a dashboard template) would be missing there."""
    from fnmatch import fnmatch

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = [(package, pattern) for package, patterns in config["package-data"].items() for pattern in patterns]
    included = config["packages"]["find"]["include"]
    missing = []
    for package in ("twin", "schemas", "streams"):
        assert any(fnmatch(package, pattern) for pattern in included), package
        for path in (REPO / package).rglob("*"):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(REPO / package).as_posix()
            if not any(owner == package and fnmatch(relative, pattern) for owner, pattern in globs):
                missing.append(f"{package}/{relative}")
    assert not missing, f"not in pyproject's [tool.setuptools.package-data], so not in the image: {missing}"


# -- every command a container runs is one the CLI takes ------------------------------------------------

PENDING_COMMANDS: set[str] = set()
"""Roles whose commands come with other branches (issues 11, 12); parsed like the rest once merged."""


def _commands() -> list[tuple[str, list[str]]]:
    out = [(f"compose {name}", [str(a) for a in s["command"]]) for name, s in _twin_services().items()]
    for overlay in OVERLAYS:
        out += [(f"{overlay} {name}", c["args"]) for name, c in _containers(overlay)]
    return out


def test_every_command_a_container_runs_is_one_the_cli_parses() -> None:
    import typer.main

    from twin.cli import app

    root = typer.main.get_command(app)  # typer's own click: groups are told by `list_commands`
    ctx = root.make_context("twin", [], resilient_parsing=True)
    checked = 0
    for where, args in _commands():
        command, rest, path = root, list(args), ["twin"]
        while hasattr(command, "list_commands"):
            name = rest.pop(0)
            found = command.get_command(ctx, name)
            if found is None:
                assert len(path) == 1 and name in PENDING_COMMANDS, f"{where}: no command `{' '.join(path)} {name}`"
                break
            command, path = found, [*path, name]
        else:
            command.make_context(" ".join(path), rest)  # raises on an unknown option or a bad value
            checked += 1
    assert checked >= 4, "topics create, migrate and worker at least"
