"""deploy/kubernetes/: the kustomize output is valid against the Kubernetes API schemas (offline,
kubernetes-validate) and in step with the code, the image and the shipped Prometheus config.
There is no cluster on the test machines: nothing here is applied (deploy/README.md)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from functools import cache
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from apigw import probes
from tests.deploy.image import gateway_with, image_port, image_user, startup_check, unknown_variables
from tests.servers import ROOT

KUSTOMIZE_DIR = ROOT / "deploy" / "kubernetes"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
# The oldest Kubernetes minor still maintained by the big providers when this was written, and
# the newest kubernetes-validate ships (requirements-dev.txt pins it).
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl is not installed: `kubectl kustomize` output not checked (the listed files still are)",
)


def listed_resources() -> list[dict[str, Any]]:
    """The files kustomization.yaml lists, read directly: what this suite checks without kubectl
    (no transformers applied; this base uses none but `images`)."""
    kustomization = yaml.safe_load((KUSTOMIZE_DIR / "kustomization.yaml").read_text())
    documents: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        documents += [d for d in yaml.safe_load_all((KUSTOMIZE_DIR / name).read_text()) if d]
    return documents


@cache
def kustomize_output() -> tuple[dict[str, Any], ...]:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(KUSTOMIZE_DIR)], capture_output=True, text=True, timeout=120, check=True
    )
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def resources() -> list[dict[str, Any]]:
    """What `kubectl apply -k` would send, or the listed files without kubectl."""
    return copy.deepcopy(list(kustomize_output())) if KUBECTL else listed_resources()


def resource(kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def deployment() -> dict[str, Any]:
    return resource("Deployment", "apigw")


def gateway_container() -> dict[str, Any]:
    (container,) = deployment()["spec"]["template"]["spec"]["containers"]
    return container


def pod_specs() -> list[dict[str, Any]]:
    return [r["spec"]["template"]["spec"] for r in resources() if r["kind"] in ("Deployment", "Job")]


def config() -> dict[str, str]:
    return resource("ConfigMap", "apigw-config")["data"]


def secret() -> dict[str, str]:
    return resource("Secret", "apigw-secrets")["stringData"]


def validate(document: dict[str, Any]) -> None:
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(document, version, strict=True)


# -- the schemas ---------------------------------------------------------------------------------


@needs_kubectl
def test_the_kustomize_output_is_valid_kubernetes() -> None:
    documents = kustomize_output()
    assert {d["kind"] for d in documents} >= {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
        "ConfigMap",
        "Secret",
    }
    for document in documents:
        validate(document)


@needs_kubectl
def test_kustomize_sets_the_image_of_every_platform_container() -> None:
    kustomization = yaml.safe_load((KUSTOMIZE_DIR / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    expected = f"{image['newName']}:{image['newTag']}"
    for spec in pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert container["image"] == expected, container["name"]


def test_every_listed_resource_is_valid_kubernetes() -> None:
    documents = listed_resources()
    assert len(documents) >= 8
    for document in documents:
        validate(document)


def test_the_validation_fails_on_a_broken_manifest() -> None:
    broken = copy.deepcopy(deployment())
    broken["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 35  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    broken = copy.deepcopy(deployment())
    gateway = broken["spec"]["template"]["spec"]["containers"][0]
    gateway["readinessProbe"]["httpGet"]["port"] = [8000]  # neither a number nor a name
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


# -- the platform's settings ---------------------------------------------------------------------


def platform_variables() -> set[str]:
    names = set(config()) | set(secret())
    for spec in pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            names |= {variable["name"] for variable in container.get("env", ())}
            for source in container.get("envFrom", ()):
                assert source.get("configMapRef", source.get("secretRef"))["name"] in ("apigw-config", "apigw-secrets")
    return names


def test_every_variable_set_is_one_the_platform_reads() -> None:
    assert not unknown_variables(platform_variables())


def test_the_secret_is_an_empty_template_the_platform_refuses() -> None:
    assert secret() and all(value == "" for value in secret().values())
    assert "CHANGE-ME" in (KUSTOMIZE_DIR / "secret.yaml").read_text()
    result = startup_check(config() | secret())
    assert result.returncode == 2
    assert "SECRET_KEY is required" in result.stderr


def test_the_settings_filled_in_pass_the_platforms_own_start_up_checks() -> None:
    filled = {
        "SECRET_KEY": "k" * 50,
        "API_KEY_PEPPER": "p" * 50,
        "DATABASE_URL": "postgres://apigw:password@postgres:5432/apigw",
        "REDIS_URL": "redis://redis:6379/0",
    }
    assert set(filled) == set(secret())
    result = startup_check(config() | filled)
    assert result.returncode == 0, result.stderr
    assert config()["DEBUG"] == "false"


# -- the gateway pods ----------------------------------------------------------------------------


def http_get(probe: str) -> dict[str, Any]:
    return gateway_container()[probe]["httpGet"]


def test_the_probes_ask_the_probe_endpoints_on_the_gateway_port() -> None:
    assert http_get("readinessProbe")["path"] == "/readyz"
    assert http_get("livenessProbe")["path"] == "/healthz"
    assert http_get("startupProbe")["path"] == "/healthz"
    ports = {port["name"]: port["containerPort"] for port in gateway_container()["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert http_get(probe)["path"] in probes.PATHS
        assert ports[http_get(probe)["port"]] == int(config()["PORT"]) == image_port()


@pytest.mark.django_db(transaction=True)
def test_a_gateway_with_these_settings_answers_every_probe() -> None:
    filled = {"SECRET_KEY": "k" * 50, "API_KEY_PEPPER": "p" * 50}
    with gateway_with(config() | filled) as gateway:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            answer = httpx.get(f"http://127.0.0.1:{gateway.port}{http_get(probe)['path']}", timeout=10)
            assert answer.status_code == 200, (probe, answer.text, gateway.output())


def test_the_grace_period_covers_the_pause_the_drain_and_the_flush() -> None:
    spec = deployment()["spec"]["template"]["spec"]
    command = gateway_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    drain = int(config()["GATEWAY_DRAIN_SECONDS"])
    assert spec["terminationGracePeriodSeconds"] >= int(command[1]) + drain + 5


def test_the_pods_run_as_the_images_user_without_privileges() -> None:
    uid, gid = image_user()
    for spec in pod_specs():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == uid and pod["runAsGroup"] == gid
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
            # The one path the platform writes: tempfile.gettempdir() (apigw/multiproc.py).
            (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert "emptyDir" in volumes[tmp["name"]], container["name"]
            assert container["resources"]["requests"] and container["resources"]["limits"], container["name"]


def test_a_rollout_never_lowers_capacity() -> None:
    strategy = deployment()["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert "replicas" not in deployment()["spec"], "the HorizontalPodAutoscaler owns the replica count"


def test_the_workers_match_the_cpu_limit() -> None:
    assert int(config()["WORKERS"]) == int(gateway_container()["resources"]["limits"]["cpu"])


# -- what selects and scales the pods ------------------------------------------------------------


def pod_labels() -> dict[str, str]:
    return deployment()["spec"]["template"]["metadata"]["labels"]


def selects_gateway_pods_only(selector: dict[str, str]) -> bool:
    job_labels = resource("Job", "apigw-migrate")["spec"]["template"]["metadata"]["labels"]
    return selector.items() <= pod_labels().items() and not selector.items() <= job_labels.items()


def test_the_services_select_the_gateway_pods_on_their_port() -> None:
    port_names = {port["name"] for port in gateway_container()["ports"]}
    for service in [r for r in resources() if r["kind"] == "Service"]:
        assert selects_gateway_pods_only(service["spec"]["selector"]), service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names


def test_prometheus_discovers_every_pod_through_the_headless_service() -> None:
    prometheus = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    job = next(job for job in prometheus["scrape_configs"] if job["job_name"] == "apigw")
    assert job["metrics_path"] in probes.PATHS
    (sd,) = job["dns_sd_configs"]
    for name in sd["names"]:
        headless = resource("Service", name)
        assert headless["spec"]["clusterIP"] == "None", "a ClusterIP name would resolve to one address"
        assert [p["port"] for p in headless["spec"]["ports"]] == [sd["port"]] == [int(config()["PORT"])]


def test_the_autoscaler_and_the_disruption_budget_target_the_gateway() -> None:
    hpa = resource("HorizontalPodAutoscaler", "apigw")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "apigw")
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] >= 2, "one pod draining must not leave none"
    pdb = resource("PodDisruptionBudget", "apigw")
    assert selects_gateway_pods_only(pdb["spec"]["selector"]["matchLabels"])
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]


def test_the_migration_job_and_the_pods_wait_for_it() -> None:
    job = resource("Job", "apigw-migrate")["spec"]["template"]["spec"]
    (migrate,) = job["containers"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert migrate["image"] == gateway_container()["image"]
    (wait,) = deployment()["spec"]["template"]["spec"]["initContainers"]
    assert "manage.py migrate --check" in " ".join(wait["command"])
    assert wait["envFrom"] == gateway_container()["envFrom"] == migrate["envFrom"]


@needs_kubectl
def test_the_fallback_reads_what_kustomize_builds() -> None:
    def names(documents: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> set[tuple[str, str]]:
        return {(d["kind"], d["metadata"]["name"]) for d in documents}

    assert names(listed_resources()) == names(kustomize_output())
