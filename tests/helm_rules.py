"""AWS Marketplace's rules for Helm charts and EKS add-ons, as checks on a chart directory.

Sources: the AWS Marketplace Seller Guide, "Container-based product requirements"
(container-product-policies: "Helm chart structure requirements", "Requirements for Amazon EKS
add-on products", "Add-on configuration requirements and best practices") and "Adding a new
version" (container-add-version: override parameters); ../shared/marketplace-facts.md, "Delivering
on EKS", sums them up. Each check names its rule in brackets, so a test can tell which one a
mutated chart breaks (tests/test_helm.py).

`violations` runs every check and returns what is broken, in words: the static ones read the
chart's files, the others read what a real Helm renders for each way the chart is installed
(`tests.helm_chart.cases`), and `helm lint`. An empty list is a chart that passes.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import kubernetes_validate
import yaml

from tests.helm_chart import Case, Helm, HelmError, cases, deep_merge

MARKETPLACE_REGISTRY = "709825985650.dkr.ecr.us-east-1.amazonaws.com"
IMAGE_TEMPLATE = (
    "{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag }}"
)
FORBIDDEN_NAMESPACES = ("default", "kube-system", "kube-public")
RELEASE_FIELDS = frozenset({"Name", "Namespace"})
# JSON Schema versions EKS add-ons accept (draft-04, -06, -07, 2019-09), http or https, '#' or not.
SUPPORTED_SCHEMAS = re.compile(r"https?://json-schema\.org/(draft-0[467]|draft/2019-09)/schema#?")
CAMEL_CASE = re.compile(r"[a-z][a-zA-Z0-9]*")
# Sensitive information the configuration schema must not accept (passwords, license keys,
# certificates); the name of a Kubernetes Secret holding one is allowed ("appSecretName").
SECRET_KEY = re.compile(
    r"(?i)password|passwd|passphrase|secret|token|credential|private.?key|api.?key|access.?key"
    r"|license.?key|certificate"
)
# Not configurable in an add-on: set by the add-ons API or injected by EKS (image, service
# account and its role, Region, cluster), or fixed by the product (security contexts, probes).
ADDON_FORBIDDEN_KEYS = frozenset({
    "image", "imagePullSecrets", "serviceAccount", "region", "clusterName", "vpcId", "accountId",
    "podSecurityContext", "securityContext", "livenessProbe", "readinessProbe", "startupProbe",
    "podDisruptionBudget", "priorityClassName", "updateStrategy", "nameOverride",
    "fullnameOverride", "podSecurityPolicy", "extraVolumes", "extraVolumeMounts",
})  # fmt: skip
EXTERNAL_REGISTRIES = (
    "dkr.ecr.",
    "public.ecr.aws",
    "docker.io",
    "quay.io",
    "gcr.io",
    "ghcr.io",
    "registry.k8s.io",
)
REGION_LITERAL = re.compile(r"\b(?:us|eu|ap|sa|ca|me|af|il|mx|cn)(?:-gov)?-[a-z]+-\d\b")
CREDENTIAL_VARIABLES = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN"}
)
# Only what Kubernetes itself serves may be probed with .Capabilities.APIVersions: a built-in
# API group has no dot, or ends in .k8s.io (custom resource groups must contain a dot).
_BUILT_IN_GROUP = re.compile(r"[a-z0-9]*|[a-z0-9.-]*\.k8s\.io")
KUBERNETES_VERSIONS = ("1.31", "1.35")
_T = TypeVar("_T")

_COMMENT = re.compile(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", re.DOTALL)
_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def templates(chart: Path) -> Iterator[tuple[str, str]]:
    """(path relative to the chart, text) of every template file."""
    for path in sorted((chart / "templates").rglob("*")):
        if path.is_file():
            yield str(path.relative_to(chart)), path.read_text()


def actions(text: str) -> list[str]:
    """The template actions ({{ ... }}) of ``text``, without comments."""
    return _ACTION.findall(_COMMENT.sub("", text))


# -- static rules: the chart's files ------------------------------------------------------------


def template_rules(chart: Path) -> Iterator[str]:
    """No lookup, no hooks, only .Release.Name/Namespace, no custom-API capability checks, the
    image built only from values.yaml, no Region written into a template."""
    for name, text in templates(chart):
        code = " ".join(actions(text))
        if re.search(r"(?<![\w.$])lookup\b", code):
            yield f"[no-lookup] {name} calls lookup (not supported in EKS add-ons)"
        for field in re.findall(r"\.Release\b(?:\.(\w+))?", code):
            if field not in RELEASE_FIELDS:
                yield (
                    f"[release-fields] {name} uses .Release.{field or '(whole)'}: only "
                    ".Release.Name and .Release.Namespace are supported"
                )
        for use in re.findall(r"\.Capabilities\.APIVersions((?:\.Has\s+\"[^\"]*\")?)", code):
            if not _built_in_api(use):
                yield (
                    f"[capabilities] {name} checks .Capabilities.APIVersions{use}: not "
                    "supported for custom APIs in EKS add-ons"
                )
        if "helm.sh/hook" in text:
            yield f"[no-hooks] {name} declares a Helm hook (not supported in EKS add-ons)"
        yield from _image_lines(name, text)
        for region in REGION_LITERAL.findall(text):
            yield f"[region] {name} hard-codes the Region {region}"


def _built_in_api(use: str) -> bool:
    """``.Has "group/version"`` of an API group Kubernetes serves itself."""
    api = re.fullmatch(r'\.Has\s+"([^"]*)"', use)
    if api is None:
        return False
    group = api.group(1).rsplit("/", 1)[0] if "/" in api.group(1) else ""
    return _BUILT_IN_GROUP.fullmatch(group) is not None


def _image_lines(name: str, text: str) -> Iterator[str]:
    for line in text.splitlines():
        image = re.match(r"\s*(?:-\s+)?image:\s*(.*?)\s*$", line)
        if image and image.group(1).strip("\"'") != IMAGE_TEMPLATE:
            found = image.group(1)
            yield f"[image-in-values] {name}: image: {found} is not built as {IMAGE_TEMPLATE}"
    for registry in EXTERNAL_REGISTRIES:
        if registry in text:
            yield (
                f"[image-in-values] {name} names a registry ({registry}): image references "
                "belong in values.yaml only"
            )


def chart_rules(chart: Path, values: Mapping[str, Any]) -> Iterator[str]:
    """Local dependencies only, the image and ServiceAccount values AWS asks for, no Pod
    Identity declaration."""
    metadata = load_yaml(chart / "Chart.yaml")
    for dependency in metadata.get("dependencies") or []:
        repository = str(dependency.get("repository", ""))
        inside = (chart / repository.removeprefix("file://")).resolve()
        if not repository.startswith("file://") or not inside.is_relative_to(chart.resolve()):
            yield (
                f"[dependencies] dependency {dependency.get('name')} comes from {repository!r}: "
                "dependent charts must be inside the chart (file://)"
            )
    image = values.get("image") or {}
    if not {"registry", "repository", "tag"} <= set(image):
        yield "[image-in-values] values.yaml image needs registry, repository and tag"
    elif image["registry"] != MARKETPLACE_REGISTRY:
        yield (
            f"[image-in-values] the default registry is {image['registry']}, not AWS "
            f"Marketplace's ECR ({MARKETPLACE_REGISTRY})"
        )
    account = values.get("serviceAccount") or {}
    if account.get("create") is not True:
        yield "[service-account] serviceAccount.create must default to true"
    if "name" not in account or "annotations" not in account:
        yield (
            "[service-account] values.yaml needs serviceAccount.name (the "
            "${AWSMP_SERVICE_ACCOUNT} override) and serviceAccount.annotations (IRSA)"
        )
    if (chart / "aws_mp_addon_parameters.json").exists():
        yield (
            "[no-pod-identity] aws_mp_addon_parameters.json declares EKS Pod Identity "
            "permissions; pay-as-you-go add-ons must use IRSA"
        )


def _properties(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, subschema) of every named key, at any depth."""
    for key, sub in (schema.get("properties") or {}).items():
        yield f"{path}{key}", sub
        yield from _properties(sub, f"{path}{key}.")
        for nested in ("items", "additionalProperties"):
            if isinstance(sub.get(nested), dict):
                yield from _properties(sub[nested], f"{path}{key}[].")


_ABSENT = object()


def _at(values: Mapping[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def schema_rules(name: str, schema: Mapping[str, Any], values: Mapping[str, Any]) -> Iterator[str]:
    """A JSON Schema version EKS accepts; every key camelCase, described, not a secret, and
    defaulting (if it says) to what values.yaml holds."""
    if not SUPPORTED_SCHEMAS.fullmatch(str(schema.get("$schema", ""))):
        yield (
            f"[schema] {name}: $schema {schema.get('$schema')!r} is not a JSON Schema version "
            "EKS add-ons accept (draft-04/06/07, 2019-09)"
        )
    for path, sub in _properties(schema):
        key = path.rsplit(".", 1)[-1].removesuffix("[]")
        if not CAMEL_CASE.fullmatch(key):
            yield f"[schema] {name}: key {path} is not camelCase"
        if not str(sub.get("description", "")).strip():
            yield f"[schema] {name}: key {path} has no description"
        if SECRET_KEY.search(key) and not key.endswith("SecretName"):
            yield f"[schema] {name}: key {path} would take a secret"
        value = _at(values, path)
        if "default" in sub and value is not _ABSENT and sub["default"] != value:
            default = sub["default"]
            yield f"[schema] {name}: key {path} defaults to {default!r}, values.yaml to {value!r}"


def addon_schema_rules(
    addon: Mapping[str, Any], full: Mapping[str, Any], values: Mapping[str, Any]
) -> Iterator[str]:
    """The add-on schema refuses unknown keys, offers nothing AWS sets itself, agrees with
    values.schema.json key for key, and its examples are valid configurations."""
    if addon.get("additionalProperties") is not False:
        yield (
            "[addon-schema] aws_mp_configuration_schema.json must refuse other keys "
            "(additionalProperties: false)"
        )
    for key, sub in (addon.get("properties") or {}).items():
        if key in ADDON_FORBIDDEN_KEYS:
            yield f"[addon-schema] {key} must not be configurable in an add-on"
        elif (full.get("properties") or {}).get(key) != sub:
            yield f"[addon-schema] {key} differs from values.schema.json's"
    for example in addon.get("examples") or []:
        checks = ((addon, example, "the add-on schema"),
                  (full, deep_merge(values, example), "values.schema.json"))  # fmt: skip
        for schema, instance, what in checks:
            errors = jsonschema.Draft7Validator(schema).iter_errors(instance)
            error = jsonschema.exceptions.best_match(errors)
            if error is not None:
                yield f"[addon-schema] an example fails {what}: {error.message}"


# -- rendered rules: what Helm makes of it ------------------------------------------------------


def rendered_rules(
    case: Case, objects: list[dict[str, Any]], values: Mapping[str, Any]
) -> Iterator[str]:
    """A Deployment or DaemonSet, everything in the release namespace, no hooks, the pods as
    the ServiceAccount values say, each pod as the image expects it."""
    where = f"({case.name})"
    workloads = [o for o in objects if o.get("kind") in ("Deployment", "DaemonSet")]
    if not workloads:
        yield f"[workload] {where} no Deployment or DaemonSet is rendered"
    for document in objects:
        kind, metadata = document.get("kind"), document.get("metadata") or {}
        if metadata.get("namespace") != case.namespace:
            yield (
                f"[namespace] {where} {kind} {metadata.get('name')} is not in the release "
                f"namespace {case.namespace}"
            )
        hooks = [a for a in metadata.get("annotations") or {} if a.startswith("helm.sh/hook")]
        if hooks:
            yield f"[no-hooks] {where} {kind} has {hooks}"
    accounts = [o["metadata"]["name"] for o in objects if o.get("kind") == "ServiceAccount"]
    account = values["serviceAccount"]
    image = "{registry}/{repository}:{tag}".format(**values["image"])
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        name = pod.get("serviceAccountName")
        if account["create"] and accounts != [name]:
            yield (
                f"[service-account] {where} the pods run as {name!r} but the rendered "
                f"ServiceAccounts are {accounts}"
            )
        if not account["create"] and (accounts or name != account["name"]):
            yield (
                f"[service-account] {where} with serviceAccount.create false the pods must run "
                f"as {account['name']!r} (got {name!r}, {accounts})"
            )
        yield from _pod_rules(where, pod)
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            yield from _container_rules(f"{where} container {container.get('name')}",
                                        container, image, values.get("region") or "")  # fmt: skip


def _pod_rules(where: str, pod: Mapping[str, Any]) -> Iterator[str]:
    security = pod.get("securityContext") or {}
    wanted = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532}
    if {k: security.get(k) for k in wanted} != wanted:
        yield f"[pod-security] {where} the pod must run as the image's user 65532: {security}"
    if not security.get("fsGroup"):
        yield f"[pod-security] {where} no fsGroup: the IRSA token would be unreadable"


def _container_rules(
    label: str, container: Mapping[str, Any], image: str, region: str
) -> Iterator[str]:
    if container.get("image") != image:
        yield f"[image-in-values] {label} runs {container.get('image')!r}, not values' {image!r}"
    context = container.get("securityContext") or {}
    if context.get("readOnlyRootFilesystem") is not True:
        yield f"[pod-security] {label} needs readOnlyRootFilesystem: true"
    if context.get("allowPrivilegeEscalation") is not False:
        yield f"[pod-security] {label} needs allowPrivilegeEscalation: false"
    requests = (container.get("resources") or {}).get("requests") or {}
    if not {"cpu", "memory"} <= set(requests):
        yield f"[resources] {label} has no cpu and memory requests: {requests}"
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if env.get(variable, "") != region:
            yield (
                f"[region] {label} sets {variable}={env.get(variable)!r}, not the region value "
                f"{region!r}"
            )
    if CREDENTIAL_VARIABLES & set(env):
        yield f"[credentials] {label} sets {sorted(CREDENTIAL_VARIABLES & set(env))}"
    if "command" in container:
        yield f"[entrypoint] {label} overrides the image's ENTRYPOINT (command)"


def kubernetes_rules(case: Case, objects: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Every object valid for the Kubernetes versions EKS runs (strict: no unknown fields)."""
    for document in objects:
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                yield (
                    f"[kubernetes-validate] ({case.name}) {document.get('kind')} on Kubernetes "
                    f"{version}: {error.message}"
                )


def _outcome(run: Callable[[], _T]) -> _T | HelmError:
    """What ``run`` returned, or the `HelmError` it raised (for a pool of Helm runs)."""
    try:
        return run()
    except HelmError as failure:
        return failure


def helm_rules(
    helm: Helm, chart: Path, values: Mapping[str, Any], addon: Mapping[str, Any]
) -> Iterator[str]:
    """helm lint passes; every install case renders and passes the rendered rules; the
    forbidden namespaces refuse to render. The Helm runs are independent: two at a time."""
    install_cases = cases((addon.get("examples") or [{}])[0])
    # As `helm install` renders each case, hooks included (rendered_rules refuses them), and as
    # AWS checks an add-on, with --no-hooks, which must change nothing.
    runs: list[Callable[[], Any]] = [lambda: helm.lint(chart)]
    runs += [functools.partial(case.render, helm, chart) for case in install_cases]
    runs += [functools.partial(case.render, helm, chart, "--no-hooks") for case in install_cases]
    runs += [
        functools.partial(helm.template, chart, release="product", namespace=namespace)
        for namespace in FORBIDDEN_NAMESPACES
    ]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(_outcome, runs))
    report = outcomes[0]
    if isinstance(report, HelmError) or "[ERROR]" in report or "[WARNING]" in report:
        yield f"[lint] {report}"
    count = len(install_cases)
    rendered, unhooked = outcomes[1 : 1 + count], outcomes[1 + count : 1 + 2 * count]
    for case, objects, without_hooks in zip(install_cases, rendered, unhooked, strict=True):
        if isinstance(objects, HelmError):
            yield f"[render] ({case.name}) {objects}"
            continue
        if without_hooks != objects:
            yield f"[no-hooks] ({case.name}) --no-hooks renders other objects"
        yield from rendered_rules(case, objects, case.effective_values(values))
        yield from kubernetes_rules(case, objects)
    for namespace, outcome in zip(FORBIDDEN_NAMESPACES, outcomes[1 + 2 * count :], strict=True):
        if not isinstance(outcome, HelmError):
            yield f"[namespace] the chart renders into the namespace {namespace}"
        elif f'namespace "{namespace}" is not supported' not in str(outcome):
            yield f"[namespace] rendering into {namespace} failed otherwise: {outcome}"


def violations(helm: Helm, chart: Path) -> list[str]:
    """Every rule ``chart`` breaks, rendered and linted by ``helm``; [] when it passes."""
    values = load_yaml(chart / "values.yaml")
    found = [*template_rules(chart), *chart_rules(chart, values)]
    schemas = {}
    for name in ("values.schema.json", "aws_mp_configuration_schema.json"):
        if (chart / name).is_file():
            schemas[name] = json.loads((chart / name).read_text())
            found += schema_rules(name, schemas[name], values)
        else:
            found.append(f"[schema] {name} is missing")
    addon = schemas.get("aws_mp_configuration_schema.json", {})
    if len(schemas) == 2:
        found += addon_schema_rules(addon, schemas["values.schema.json"], values)
    found += helm_rules(helm, chart, values, addon)
    return found
