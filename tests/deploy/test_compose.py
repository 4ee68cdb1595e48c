"""deploy/compose/: valid by the Compose specification, and in step with the code, the image,
the shipped Prometheus and Grafana files and its own load balancer. There is no Docker daemon on
the test machines: nothing here starts a container (deploy/README.md says what that leaves)."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from apigw import probes
from tests.deploy.image import gateway_with, image_default_port, image_port, startup_check, unknown_variables
from tests.servers import ROOT

COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
NGINX_CONF = COMPOSE_DIR / "nginx.conf"
ENV_EXAMPLE = COMPOSE_DIR / "env.example"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
PLATFORM_IMAGE = "apigw:local"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
_INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with the Compose specification schema it ships (offline)."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def platform_services() -> dict[str, dict[str, Any]]:
    """The services that run the platform's image (gateway, one-shot jobs, demo upstream)."""
    return {name: s for name, s in services().items() if s.get("image") == PLATFORM_IMAGE}


def interpolate(value: str) -> str:
    """What Compose would substitute with an .env made from env.example: defaults as given,
    required values as a placeholder of the right shape."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, word = match.groups()
        if operator and operator.endswith("-"):
            return word
        return f"test{name.lower().replace('_', '')}"

    return _INTERPOLATION.sub(substitute, value)


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping, so it can be merged from the shared anchor"
    return {name: interpolate(str(value)) for name, value in env.items()}


def duration_seconds(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a Compose duration: {text!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def healthcheck_url(service: str) -> str:
    command = " ".join(services()[service]["healthcheck"]["test"])
    urls = re.findall(r"http://[^'\"\s]+", command)
    assert len(urls) == 1, command
    return urls[0]


def mounts(service: str) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (named volumes left out)."""
    found = {}
    for volume in services()[service].get("volumes", ()):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[target] = (COMPOSE_DIR / source).resolve()
    return found


def network_address(service: str, network: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(services()[service]["networks"][network]["ipv4_address"])


def subnet(network: str) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    config = compose()["networks"][network]["ipam"]["config"][0]
    return ipaddress.IPv4Network(config["subnet"]), ipaddress.IPv4Network(config["ip_range"])


# -- the specification ---------------------------------------------------------------------------


def test_the_compose_file_follows_the_compose_specification() -> None:
    result = validate(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validation_fails_on_a_broken_compose_file(tmp_path: Path) -> None:
    broken = compose()
    broken["services"]["gateway"]["stop_grace_period"] = {"seconds": 30}  # a duration is a string
    broken["services"]["gateway"]["healtcheck"] = {"test": ["CMD", "true"]}  # misspelt key
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = validate(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "healtcheck" in result.stdout + result.stderr


# -- the platform's containers -------------------------------------------------------------------


def test_the_platform_services_are_the_gateway_the_jobs_and_the_demo() -> None:
    assert set(platform_services()) == {"gateway", "migrate", "loaddemo", "demo"}


def test_every_variable_set_on_the_platform_is_one_it_reads() -> None:
    for name in platform_services():
        assert not unknown_variables(set(environment(name))), name


def test_the_settings_pass_the_platforms_own_start_up_checks() -> None:
    result = startup_check(environment("gateway"))
    assert result.returncode == 0, result.stderr
    # And the check is real: the same settings with a typo in a value are refused.
    broken = environment("gateway") | {"GATEWAY_TRUSTED_PROXIES": "172.30.10.10/33"}
    assert startup_check(broken).returncode == 2


@pytest.mark.django_db(transaction=True)
def test_a_gateway_with_these_settings_passes_the_healthcheck_and_refuses_other_scrapers() -> None:
    """The healthcheck command, as written, exits 0 against a real gateway with the gateway
    service's environment."""
    with gateway_with(environment("gateway")) as gateway:
        command = services()["gateway"]["healthcheck"]["test"]
        assert command[:2] == ["CMD", "python"]
        script = command[-1].replace("127.0.0.1:8000", f"127.0.0.1:{gateway.port}")
        result = subprocess.run([sys.executable, *command[2:-1], script], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr + gateway.output()
        # METRICS_ALLOWED_NETWORKS is Prometheus's address only: not even loopback may scrape.
        assert httpx.get(f"http://127.0.0.1:{gateway.port}/metrics", timeout=10).status_code == 403


def test_production_settings() -> None:
    env = environment("gateway")
    assert env["DEBUG"] == "false"
    raw = services()["gateway"]["environment"]
    for secret in ("SECRET_KEY", "API_KEY_PEPPER"):
        assert re.fullmatch(r"\$\{" + secret + r":\?[^}]+\}", raw[secret]), f"{secret} must be required from .env"
    assert env["ALLOWED_HOSTS"] and env["REDIS_URL"].startswith("redis://redis:")
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]


def test_every_required_value_has_a_line_in_env_example() -> None:
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", COMPOSE_FILE.read_text()))
    example = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))
    assert required and required == set(example)
    assert all(value == "CHANGE-ME" for value in example.values())
    assert (COMPOSE_DIR / ".gitignore").read_text().splitlines()[-1] == ".env"


def test_the_secrets_file_stays_out_of_the_image() -> None:
    """The build context is the repository, which holds deploy/compose/.env once filled in."""
    for service in platform_services().values():
        assert (COMPOSE_DIR / service["build"]["context"]).resolve() == ROOT
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**/.env" in ignored and "deploy" in ignored


def test_the_gateway_scales_without_host_port_conflicts() -> None:
    gateway = services()["gateway"]
    assert "ports" not in gateway and "container_name" not in gateway
    port = int(environment("gateway")["PORT"])
    assert port == image_port() == image_default_port()
    assert gateway["expose"] == [str(port)]


def test_the_gateway_starts_after_the_migrations_and_its_stores() -> None:
    depends = services()["gateway"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["redis"]["condition"] == depends["postgres"]["condition"] == "service_healthy"
    assert services()["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services()["redis"]["healthcheck"]["test"] and services()["postgres"]["healthcheck"]["test"]


def test_the_healthcheck_asks_the_readiness_probe() -> None:
    url = healthcheck_url("gateway")
    assert url == f"http://127.0.0.1:{environment('gateway')['PORT']}/readyz"
    assert url.rsplit("/", 1)[1] in {p.lstrip("/") for p in probes.PATHS}


def test_the_stop_grace_period_covers_the_drain() -> None:
    gateway = services()["gateway"]
    drain = int(environment("gateway")["GATEWAY_DRAIN_SECONDS"])
    # The lifespan shutdown (usage flush, leases released) runs after the drain deadline.
    assert duration_seconds(gateway["stop_grace_period"]) >= drain + 5
    assert gateway.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_the_platform_containers_have_a_read_only_root_and_a_writable_tmp() -> None:
    for name, service in platform_services().items():
        assert service["read_only"] is True, name
        assert "/tmp" in service["tmpfs"], name  # tempfile.gettempdir(): apigw/multiproc.py
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    assert environment("loaddemo")["APIGW_VAR_DIR"].startswith("/tmp/")


def test_the_demo_routes_point_at_the_demo_service() -> None:
    command = services()["loaddemo"]["command"]
    upstream = command[command.index("--upstream-url") + 1]
    demo = services()["demo"]["command"]
    assert upstream == f"http://demo:{demo[demo.index('--port') + 1]}"
    assert healthcheck_url("demo") == f"http://127.0.0.1:{demo[demo.index('--port') + 1]}/healthz"


# -- the load balancer ---------------------------------------------------------------------------


def nginx_upstream_servers() -> list[str]:
    block = re.search(r"upstream gateway \{(.*?)\}", NGINX_CONF.read_text(), flags=re.DOTALL)
    assert block is not None
    return re.findall(r"^\s*server\s+(\S+)", block.group(1), flags=re.MULTILINE)


def test_the_load_balancer_follows_every_gateway_instance() -> None:
    text = NGINX_CONF.read_text()
    assert nginx_upstream_servers() == [f"gateway:{environment('gateway')['PORT']}"]
    assert re.search(r"server gateway:\d+ resolve;", text), "re-resolve so --scale takes effect"
    assert "resolver 127.0.0.11" in text  # Docker's embedded DNS
    lb = services()["lb"]
    assert lb["volumes"] == ["./nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert lb["depends_on"]["gateway"]["condition"] == "service_healthy"
    version = tuple(int(n) for n in lb["image"].split(":")[1].split("."))
    assert version >= (1, 27, 3), "`server ... resolve` needs nginx 1.27.3 or later"


def test_only_the_load_balancer_is_a_trusted_proxy() -> None:
    trusted = [ipaddress.ip_network(n) for n in environment("gateway")["GATEWAY_TRUSTED_PROXIES"].split(",")]
    lb = network_address("lb", "edge")
    assert any(lb in network for network in trusted)
    assert all(network.num_addresses == 1 for network in trusted)
    whole, dynamic = subnet("edge")
    assert lb in whole and lb not in dynamic, "no gateway instance can be given the balancer's address"
    assert set(services()["gateway"]["networks"]) >= {"edge"} and set(services()["lb"]["networks"]) == {"edge"}


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (Debian package 'nginx')")
def test_nginx_accepts_the_load_balancer_configuration(tmp_path: Path) -> None:
    """`nginx -t` with the machine's nginx. Debian's (1.22) predates `server ... resolve` and
    resolves names while it reads the file, so that one line points at a literal address."""
    text = NGINX_CONF.read_text()
    server = re.compile(r"server gateway:(\d+) resolve;")
    assert server.search(text)
    config = tmp_path / "nginx.conf"
    config.write_text(server.sub(r"server 127.0.0.1:\1;", text))
    result = subprocess.run(
        ["nginx", "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_the_load_balancer_does_not_serve_metrics() -> None:
    assert re.search(r"location = /metrics \{\s*return 404;", NGINX_CONF.read_text())


# -- Prometheus and Grafana ----------------------------------------------------------------------


def scrape_job() -> dict[str, Any]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    return next(job for job in config["scrape_configs"] if job["job_name"] == "apigw")


def test_prometheus_scrapes_every_gateway_instance() -> None:
    job = scrape_job()
    assert job["metrics_path"] == "/metrics" and job["metrics_path"] in probes.PATHS
    (sd,) = job["dns_sd_configs"]
    assert sd["type"] == "A" and sd["port"] == int(environment("gateway")["PORT"])
    # The name resolves to every instance on the network Prometheus shares with them.
    networks = services()["gateway"]["networks"]
    shared = set(networks) & set(services()["prometheus"]["networks"])
    assert shared == {"metrics"}
    for name in sd["names"]:
        assert name == "gateway" or name in networks["metrics"]["aliases"]


def test_prometheus_runs_the_shipped_config_and_rules() -> None:
    found = mounts("prometheus")
    assert found["/etc/prometheus/prometheus.yml"] == PROMETHEUS_CONFIG
    rules_dir = found["/etc/prometheus/rules"]
    assert list(rules_dir.glob("*.yml")), "rule_files: rules/*.yml beside the config"
    assert yaml.safe_load(PROMETHEUS_CONFIG.read_text())["rule_files"] == ["rules/*.yml"]


def test_only_prometheus_may_scrape() -> None:
    allowed = [ipaddress.ip_network(n) for n in environment("gateway")["METRICS_ALLOWED_NETWORKS"].split(",")]
    prometheus = network_address("prometheus", "metrics")
    assert any(prometheus in network for network in allowed)
    assert all(network.num_addresses == 1 for network in allowed)
    whole, dynamic = subnet("metrics")
    assert prometheus in whole and prometheus not in dynamic


def test_grafana_is_provisioned_with_the_shipped_dashboard_and_datasource() -> None:
    found = mounts("grafana")
    provisioning = GRAFANA / "provisioning"
    assert found["/etc/grafana/provisioning/datasources"] == provisioning / "datasources"
    assert found["/etc/grafana/provisioning/dashboards"] == provisioning / "dashboards"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "apigw.yml").read_text())["providers"]
    dashboards = found[provider["options"]["path"]]
    assert dashboards == GRAFANA / "dashboards" and (dashboards / "apigw-overview.json").is_file()
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    host, port = source["url"].removeprefix("http://").split(":")
    assert host in services() and port == "9090"
    assert set(services()[host]["networks"]) & set(services()["grafana"]["networks"])


@pytest.mark.parametrize("service", sorted(yaml.safe_load(COMPOSE_FILE.read_text())["services"]))
def test_every_bind_mount_exists(service: str) -> None:
    for target, source in mounts(service).items():
        assert source.exists(), f"{service}: {source} (mounted at {target}) is missing"
