"""deploy/ checked offline: Kubernetes manifests against the Kubernetes schemas (kubernetes-validate ships them),
the compose file's shape, the Dockerfile, Prometheus rules with promtool (skipped without it), the Grafana
dashboard, and that every metric the alerts and the dashboard name is one Relay exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from support.spine import ROOT

from relay.base import metrics
from relay.base.runtime import Runtime
from relay.base.settings import Settings
from routing.validation import check_config

DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.37.0"  # the newest schemas kubernetes-validate==1.37.0 ships

# Every RELAY_* name DESIGN.md gives (kept here too: CI's copy of DESIGN.md may not sit beside the clone).
DESIGN_NAMES = {
    "RELAY_CONFIG", "RELAY_PUBLIC_URL", "RELAY_WEBHOOK_SECRET", "RELAY_WECOM_CORP_ID", "RELAY_WECOM_SECRET",
    "RELAY_WECOM_AGENT_ID", "RELAY_WECHAT_APP_ID", "RELAY_WECHAT_APP_SECRET", "RELAY_DINGTALK_SECRET",
    "RELAY_SMS_PROVIDER", "RELAY_SMS_ACCESS_KEY_ID", "RELAY_SMS_ACCESS_KEY_SECRET", "RELAY_SMS_SIGN_NAME",
    "RELAY_SMS_TEMPLATE_ID", "RELAY_SMS_REGION", "RELAY_SMS_APP_ID", "RELAY_WECOM_BASE_URL",
    "RELAY_WECHAT_BASE_URL", "RELAY_ALIYUN_SMS_BASE_URL", "RELAY_TENCENT_SMS_BASE_URL",
}


def design_names() -> set[str]:
    for candidate in (ROOT.parent / "shared" / "DESIGN.md", ROOT / "shared" / "DESIGN.md"):
        if candidate.exists():
            return DESIGN_NAMES | set(re.findall(r"RELAY_[A-Z][A-Z_]*[A-Z]", candidate.read_text(encoding="utf-8")))
    return DESIGN_NAMES


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted((DEPLOY / "k8s").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                found.append((path, document))
    return found


def manifest(kind: str, name: str) -> dict[str, Any]:
    (document,) = [d for _, d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return document


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result


# Kubernetes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path,document", manifests(), ids=lambda v: v.name if isinstance(v, Path) else v["kind"])
def test_every_manifest_is_valid_against_the_kubernetes_schema(path: Path, document: dict[str, Any]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")

    kubernetes_validate.validate(document, K8S_VERSION, strict=True)  # raises with the failing field


def test_the_schema_check_would_catch_a_misspelt_field() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    broken = json.loads(json.dumps(manifest("Deployment", "relay-api")))
    container(broken)["readinessProbe"]["httpGett"] = container(broken)["readinessProbe"].pop("httpGet")

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_manifests_hold_what_a_district_needs() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in manifests()}
    assert kinds == {
        ("Deployment", "relay-api"), ("Service", "relay-api"), ("PodDisruptionBudget", "relay-api"),
        ("Deployment", "relay-worker"), ("PodDisruptionBudget", "relay-worker"),
        ("ConfigMap", "relay-school"), ("Secret", "relay-secrets"),
    }
    # Templates that must never overwrite the real ones are kept out of `kubectl apply -f deploy/k8s/`.
    top = {d["kind"] for path, d in manifests() if path.parent == DEPLOY / "k8s"}
    assert top.isdisjoint({"Secret", "ConfigMap"})


@pytest.mark.parametrize("name", ["relay-api", "relay-worker"])
def test_each_deployment_is_probed_bounded_graceful_and_non_root(name: str) -> None:
    deployment = manifest("Deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)

    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert set(main["resources"]["requests"]) == {"cpu", "memory"} == set(main["resources"]["limits"])
    assert "livenessProbe" in main
    env = {e["name"]: e for e in main["env"]}
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "relay-secrets", "key": "REDIS_URL"}
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[env["PROMETHEUS_MULTIPROC_DIR"]["value"]]]
    school = Path(env["RELAY_CONFIG"]["value"])
    assert volumes[mounts[str(school.parent)]]["configMap"]["name"] == "relay-school"
    budget = manifest("PodDisruptionBudget", name)
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_api_is_ready_with_redis_and_alive_on_its_own() -> None:
    api = container(manifest("Deployment", "relay-api"))
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"  # endpoints go before the port closes
    service = manifest("Service", "relay-api")
    assert service["spec"]["selector"] == manifest("Deployment", "relay-api")["spec"]["selector"]["matchLabels"]


def test_a_worker_is_alive_while_its_timer_loop_touches_its_heartbeat() -> None:
    deployment = manifest("Deployment", "relay-worker")
    worker = container(deployment)
    env = {e["name"]: e.get("value") for e in worker["env"]}
    probe = " ".join(worker["livenessProbe"]["exec"]["command"])
    assert env["RELAY_HEARTBEAT_FILE"] in probe
    # Longer than a delivery job may run (RQ's job timeout of 60 s), so warm shutdown can finish it.
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 60


def test_the_configmap_holds_a_valid_school_configuration() -> None:
    document = yaml.safe_load(manifest("ConfigMap", "relay-school")["data"]["school.yaml"])
    directory, problems = check_config(document)
    assert directory is not None, [str(p) for p in problems]


def test_the_secret_template_names_every_credential_and_holds_none() -> None:
    data = manifest("Secret", "relay-secrets")["stringData"]
    assert design_names() - {"RELAY_CONFIG"} <= set(data)
    assert {"REDIS_URL", "RELAY_SECRET_KEY"} <= set(data)
    assert set(data.values()) == {""}


@pytest.mark.parametrize("name", ["relay-api", "relay-worker"])
def test_each_deployment_takes_the_sentinel_settings_from_the_secret(name: str) -> None:
    # Redis itself is managed or a chart's (README-ops.md): Relay needs only these names in the Secret.
    sources = container(manifest("Deployment", name))["envFrom"]
    assert {"secretRef": {"name": "relay-secrets"}} in sources
    data = manifest("Secret", "relay-secrets")["stringData"]
    assert {"RELAY_REDIS_SENTINELS", "RELAY_REDIS_SENTINEL_MASTER", "RELAY_INTAKE_MIN_REPLICAS",
            "RELAY_INTAKE_REPLICA_TIMEOUT_MS"} <= set(data)


# compose ------------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_compose_runs_two_apis_three_workers_and_redis_with_a_replica() -> None:
    services = compose()["services"]

    assert {"api", "worker", "redis", "redis-replica"} <= set(services)
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 3
    assert command_text(services["api"]).startswith("serve") and command_text(services["worker"]) == "worker"
    assert services["api"]["image"] == services["worker"]["image"]  # one image for both


def test_compose_redis_logs_every_write_and_wants_a_password() -> None:
    services = compose()["services"]
    node = (DEPLOY / "redis" / "node.sh").read_text()

    for name in ("redis", "redis-replica"):
        assert services[name]["command"][:2] == ["sh", "/etc/relay-redis/node.sh"]
        assert "./redis:/etc/relay-redis:ro" in services[name]["volumes"]
        assert "secrets.env" in services[name]["env_file"]
    assert "--appendonly yes --appendfsync everysec" in node
    assert "requirepass" in node and "$REDIS_PASSWORD" in node  # from the env file, at run time
    assert services["redis"]["command"][2:] == ["redis", ""]  # the first master
    assert services["redis-replica"]["command"][2:] == ["redis-replica", "redis"]  # --replicaof redis 6379 at first
    assert '--replicaof "$master" 6379' in node


def test_compose_runs_three_sentinels_and_relay_finds_the_master_through_them() -> None:
    services = compose()["services"]
    sentinels = sorted(name for name in services if name.startswith("sentinel-"))
    script = (DEPLOY / "redis" / "sentinel.sh").read_text()

    assert sentinels == ["sentinel-1", "sentinel-2", "sentinel-3"]
    for name in sentinels:
        assert services[name]["command"] == ["sh", "/etc/relay-redis/sentinel.sh", name]
        assert f"{name}-data:/data" in services[name]["volumes"]  # its rewritten config survives a restart
        assert "ports" not in services[name]
    assert "sentinel monitor relay redis 6379 2" in script  # quorum 2 of 3
    assert "sentinel auth-pass relay $REDIS_PASSWORD" in script
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["RELAY_REDIS_SENTINELS"] == ",".join(f"{s}:26379" for s in sentinels)
        assert env["RELAY_REDIS_SENTINEL_MASTER"] == "relay"
        assert int(env["RELAY_INTAKE_MIN_REPLICAS"]) == 1 and int(env["RELAY_INTAKE_REPLICA_TIMEOUT_MS"]) > 0
    # A restarted node asks each sentinel who the master is now, and rejoins it.
    node = (DEPLOY / "redis" / "node.sh").read_text()
    assert f"for sentinel in {' '.join(sentinels)}; do" in node


@pytest.mark.parametrize("script", ["node.sh", "sentinel.sh"])
def test_the_redis_scripts_are_valid_shell(script: str) -> None:
    done = subprocess.run(["sh", "-n", str(DEPLOY / "redis" / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_compose_mounts_the_school_configuration_and_reads_secrets_from_the_ignored_env_file() -> None:
    services = compose()["services"]
    for name in ("api", "worker"):
        service = services[name]
        config = service["environment"]["RELAY_CONFIG"]
        assert any(volume.endswith((f":{config}", f":{config}:ro")) for volume in service["volumes"]), service["volumes"]
        assert service["env_file"] == ["secrets.env"]
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/secrets.env" in ignored
    assert "deploy/secrets.env" in (ROOT / ".dockerignore").read_text().splitlines()
    # Only the proxy is published; it forwards to the api service by name.
    assert [name for name, s in services.items() if "ports" in s] == ["proxy"]
    assert "server api:8000" in (DEPLOY / "nginx.conf").read_text()


def test_the_secrets_example_names_every_variable_with_empty_values() -> None:
    assignments = [line.split("=", 1) for line in (DEPLOY / "secrets.env.example").read_text().splitlines()
                   if line.strip() and not line.startswith("#")]
    names = {name for name, _ in assignments}

    assert design_names() <= names
    assert {"REDIS_URL", "REDIS_PASSWORD", "RELAY_SECRET_KEY"} <= names
    assert [name for name, value in assignments if value] == []


# The image ----------------------------------------------------------------------------------------------


def test_the_dockerfile_installs_the_package_and_runs_as_a_user() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    assert lines[[line.startswith("FROM") for line in lines].index(True)] == "FROM python:3.11-slim"
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any("pyproject.toml" in line for line in lines) and any("pip install" in line for line in lines)
    assert 'ENTRYPOINT ["relay"]' in lines


# Prometheus and Grafana ---------------------------------------------------------------------------------


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")


@needs_promtool
@pytest.mark.parametrize("check", [["check", "rules", "alerts.yaml"], ["test", "rules", "alerts.test.yaml"],
                                   ["check", "config", "prometheus.yml"]], ids=" ".join)
def test_promtool_accepts_the_rules(check: list[str], tmp_path: Path) -> None:
    assert PROMTOOL is not None
    # As an operator runs it: the scrape token file beside the configuration (never in the repository).
    shutil.copytree(DEPLOY / "prometheus", tmp_path, dirs_exist_ok=True)
    (tmp_path / "relay-metrics-token").write_text("a-token\n")
    done = subprocess.run([PROMTOOL, *check], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_the_alerts_cover_what_must_page() -> None:
    paging = {rule["alert"] for rule in alert_rules() if rule["labels"]["severity"] == "page"}
    assert {"RelayP0Undelivered", "RelayTimersLate", "RelayRedisDown", "RelayP0DeadLetter"} <= paging
    assert "RelayDeadLettersGrowing" in {rule["alert"] for rule in alert_rules()}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DEPLOY / "grafana" / "relay.json").read_text(encoding="utf-8"))
    return loaded


def test_the_dashboard_is_json_with_a_panel_per_metric_family() -> None:
    board = dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert board["uid"] and board["title"] == "Relay"
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in panels)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def exported_names(redis_url: str) -> set[str]:
    """Every sample name Relay's /metrics can carry."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "gauge": ("",)}
    names = set()
    for family in metrics.REGISTRY.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    runtime = Runtime(Settings(queue_prefix="relayops-" + uuid.uuid4().hex[:8]), connection=redis.Redis.from_url(redis_url))
    for family in metrics.StateCollector(runtime).collect():
        names.add(family.name)
    return names


def test_alerts_and_dashboard_name_only_metrics_relay_exports(redis_url: str) -> None:
    exported = exported_names(redis_url)
    expressions = [rule["expr"] for rule in alert_rules()]
    expressions += [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    used = {name for expr in expressions for name in re.findall(r"\brelay_[a-z_]+\b", expr)}

    assert used - exported == set()
    families = {"relay_requests_received_total", "relay_first_delivery_seconds_bucket", "relay_dead_letters_total",
                "relay_timer_lateness_seconds_bucket", "relay_queue_depth", "relay_open_requests",
                "relay_overdue_requests", "relay_dead_letters_waiting", "relay_timers_pending", "relay_redis_up"}
    assert families <= used


# nginx --------------------------------------------------------------------------------------------------


def nginx_body_limits() -> list[tuple[re.Pattern[str] | None, int]]:
    """(location regex or None for the server's default, client_max_body_size in bytes) of deploy/nginx.conf."""
    text = (DEPLOY / "nginx.conf").read_text()
    units = {"": 1, "k": 1024, "m": 1024 * 1024}
    limits: list[tuple[re.Pattern[str] | None, int]] = []
    for location, size, unit in re.findall(r"(?:location ~ (\S+) \{\s*)?client_max_body_size (\d+)([km]?);", text):
        limits.append((re.compile(location) if location else None, int(size) * units[unit]))
    return limits


def nginx_limit_for(path: str) -> int:
    limits = nginx_body_limits()
    return next((size for pattern, size in limits if pattern and pattern.match(path)),
                next(size for pattern, size in limits if pattern is None))


def test_nginx_lets_through_every_body_relay_itself_accepts() -> None:
    from relay.api.body_limit import FORM_BYTES, LARGER
    from relay.base.settings import Settings

    for (_, path), size in LARGER.items():
        assert nginx_limit_for(path) >= size, path
    assert nginx_limit_for("/v1/requests") >= Settings().max_body_bytes
    assert nginx_limit_for("/staff/requests/x/reply") >= FORM_BYTES


def test_the_example_schools_own_roster_export_can_be_uploaded_through_nginx() -> None:
    from relay.base.directory import load_yaml
    from relay.school import roster_files

    export = roster_files.workbook(load_yaml(DEPLOY / "examples/school.yaml").schools[0])
    assert len(export) > 64 * 1024  # more than a page's form: the reason for the upload route's own limit
    for path in ("/v1/admin/roster/check", "/admin/roster/check"):
        assert nginx_limit_for(path) > len(export) + 4096, path  # the file and its multipart envelope


def test_prometheus_scrapes_the_api_with_the_metrics_token() -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (api,) = [job for job in scrape["scrape_configs"] if job["job_name"] == "relay-api"]
    assert api["authorization"]["credentials_file"]
    assert "RELAY_METRICS_TOKEN" in manifest("Secret", "relay-secrets")["stringData"]
    assert "RELAY_METRICS_TOKEN=" in (DEPLOY / "secrets.env.example").read_text().splitlines()
    assert "authorization: {credentials_file:" in (ROOT / "README-ops.md").read_text(), "the Kubernetes job"
