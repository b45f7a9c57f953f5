"""A real Helm, run the way AWS Marketplace and buyers run it, on a chart directory.

The binaries are the pinned official releases `tests/helm_install.py` puts beside the virtual
environment's Python (``make .venv/.dev`` does it): ``helm`` (Helm 3, which AWS Marketplace's
add-on validation uses) and ``helm4``. Each run gets empty Helm configuration, cache and data
directories and no kubeconfig, so nothing on the machine (repositories, plugins, a cluster)
changes what it does: ``helm lint`` and ``helm template`` work offline, without a cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BIN = Path(sys.executable).parent
HELM_COMMANDS = ("helm", "helm4")


class HelmError(Exception):
    """helm exited non-zero; the message holds what it printed."""


@dataclass(frozen=True)
class Helm:
    binary: Path

    @property
    def name(self) -> str:
        return self.binary.name

    def __call__(self, *args: str) -> str:
        """Run helm with ``args``; return stdout, raise `HelmError` with stderr on failure."""
        with tempfile.TemporaryDirectory(prefix="helm-home-") as home:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": home,
                "HELM_CACHE_HOME": f"{home}/cache",
                "HELM_CONFIG_HOME": f"{home}/config",
                "HELM_DATA_HOME": f"{home}/data",
                "KUBECONFIG": f"{home}/no-kubeconfig",
            }
            result = subprocess.run(
                [str(self.binary), *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
        if result.returncode != 0:
            raise HelmError(f"{self.name} {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def version(self) -> str:
        return self("version").strip()

    def lint(self, chart: Path) -> str:
        """``helm lint CHART``, as AWS Marketplace runs it; returns the report."""
        return self("lint", str(chart))

    def template(
        self,
        chart: Path,
        *,
        release: str,
        namespace: str,
        values: Mapping[str, Any] | None = None,
        sets: Mapping[str, str] | None = None,
        options: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """``helm template RELEASE CHART --namespace NS [-f VALUES] [--set K=V]... OPTIONS``;
        returns the rendered objects."""
        args = ["template", release, str(chart), "--namespace", namespace, *options]
        with tempfile.TemporaryDirectory(prefix="helm-values-") as scratch:
            if values:
                path = Path(scratch) / "values.json"
                path.write_text(json.dumps(values))
                args += ["-f", str(path)]
            for key, value in (sets or {}).items():
                args += ["--set", f"{key}={value}"]  # as AWS's command: 1.31 becomes a number
            output = self(*args)
        return [doc for doc in yaml.safe_load_all(output) if doc]

    def run_template(self, chart: Path, arguments: Sequence[str]) -> list[dict[str, Any]]:
        """``helm template my-product CHART ARGUMENTS`` (what ``helm install`` would apply)."""
        output = self("template", "my-product", str(chart), *arguments)
        return [doc for doc in yaml.safe_load_all(output) if doc]


def installed_helms() -> list[Helm]:
    return [Helm(BIN / name) for name in HELM_COMMANDS]


# AWS Marketplace's add-on check: "helm template <chart-name> <chart-location> --set
# k8version=<Kubernetes-version> --kube-version <Kubernetes-version> --namespace <addon-namespace>
# --include-crds --no-hooks -f <any-overridden-values>" (seller guide, container-product-policies).
ADDON_KUBERNETES_VERSION = "1.31"
# (`violations` renders the add-on with and without --no-hooks: hooks would show as a difference.)
ADDON_OPTIONS = ("--kube-version", ADDON_KUBERNETES_VERSION, "--include-crds")


@dataclass(frozen=True)
class Case:
    """One way the chart is installed, with the values it is given."""

    name: str
    release: str
    namespace: str
    values: dict[str, Any] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()

    def render(self, helm: Helm, chart: Path, *options: str) -> list[dict[str, Any]]:
        return helm.template(
            chart,
            release=self.release,
            namespace=self.namespace,
            values=self.values,
            sets=self.sets,
            options=[*self.options, *options],
        )

    def effective_values(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """values.yaml, then the case's values file, then its --set keys (top-level only)."""
        return deep_merge(deep_merge(dict(defaults), self.values), dict(self.sets))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of a values file over the chart's defaults: maps merge, the rest
    replaces (null deletes)."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


IRSA_ROLE = "arn:aws:iam::111122223333:role/marketplace-product-irsa"
REGIONAL_REGISTRY = "709825985650.dkr.ecr.eu-central-1.amazonaws.com"


def cases(addon_configuration: Mapping[str, Any]) -> list[Case]:
    """The installs the chart must support: plain Helm with IRSA, AWS Marketplace's Helm launch
    (the buyer's existing ServiceAccount, from ${AWSMP_SERVICE_ACCOUNT}), a registry AWS
    Marketplace rewrote for another Region, and the EKS add-on (AWS's own template command,
    the add-on configuration a buyer gives, the Region EKS fills in for ${AWS_REGION})."""
    return [
        Case(
            "helm-irsa",
            release="my-product",
            namespace="my-product",
            values={"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": IRSA_ROLE}}},
        ),
        Case(
            "marketplace-helm-launch",
            release="my-product",
            namespace="my-product",
            values={"serviceAccount": {"create": False, "name": "buyer-irsa-account"}},
        ),
        Case(
            "regionalized-image",
            release="product",
            namespace="products",
            values={"image": {"registry": REGIONAL_REGISTRY}},
        ),
        Case(
            "eks-add-on",
            release="acme-product",
            namespace="acme-product",
            values=dict(addon_configuration),
            sets={"region": "us-west-2", "k8version": ADDON_KUBERNETES_VERSION},
            options=ADDON_OPTIONS,
        ),
    ]
