"""The deployment files in deploy/ are valid and say what matters.

ECS: the task definition is validated against a JSON Schema derived from the ECS API model that
botocore ships (``RegisterTaskDefinition``'s input shape: the schema the AWS SDKs validate with),
with unknown fields refused, so a misspelt ``readonlyRootFilesystem`` fails here, not in a
seller's account. EKS: every manifest is validated with kubernetes-validate (bundled OpenAPI
schemas, strict mode), and the fields that make metering work are asserted.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from entrypoint.config import _PRODUCT_CODE  # the API model's ProductCode pattern

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ECS = DEPLOY / "ecs"
EKS = DEPLOY / "eks"
KUBERNETES_VERSION = "1.31"


def _shape_schema(shape: Any, depth: int = 0) -> dict[str, Any]:
    """A JSON Schema for a botocore shape (structures close over their members)."""
    if depth > 30:
        return {}
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        return {
            "type": "object",
            "properties": {
                name: _shape_schema(member, depth + 1) for name, member in shape.members.items()
            },
            "required": list(shape.required_members),
            "additionalProperties": False,
        }
    if kind == "list":
        schema: dict[str, Any] = {"type": "array", "items": _shape_schema(shape.member, depth + 1)}
        if "min" in meta:
            schema["minItems"] = meta["min"]
        return schema
    if kind == "map":
        return {"type": "object", "additionalProperties": _shape_schema(shape.value, depth + 1)}
    if kind == "string":
        schema = {"type": "string"}
        if shape.enum:
            schema["enum"] = list(shape.enum)
        limits = {"minLength": meta.get("min"), "maxLength": meta.get("max")}
        schema.update({k: v for k, v in limits.items() if v is not None})
        return schema
    if kind in ("integer", "long"):
        return {"type": "integer", **({"minimum": meta["min"]} if "min" in meta else {})}
    return _SCALARS.get(kind, {})


_SCALARS: dict[str, dict[str, Any]] = {
    "float": {"type": "number"},
    "double": {"type": "number"},
    "boolean": {"type": "boolean"},
}


@cache
def task_definition_schema() -> dict[str, Any]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    return _shape_schema(shape)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# -- ECS -----------------------------------------------------------------------------------------


def test_task_definition_matches_the_ecs_api_model() -> None:
    jsonschema.validate(load_json(ECS / "task-definition.json"), task_definition_schema())


def test_the_schema_catches_a_misspelt_field() -> None:
    """Shows the validation above is real: one wrong letter fails it."""
    document = load_json(ECS / "task-definition.json")
    container = document["containerDefinitions"][0]
    container["readOnlyRootFilesystem"] = container.pop("readonlyRootFilesystem")
    with pytest.raises(jsonschema.ValidationError, match="readOnlyRootFilesystem"):
        jsonschema.validate(document, task_definition_schema())


def test_task_definition_fields_that_matter() -> None:
    document = load_json(ECS / "task-definition.json")
    assert document["taskRoleArn"].startswith("arn:aws:iam::")  # credentials: the task role
    (container,) = document["containerDefinitions"]
    assert container["readonlyRootFilesystem"] is True
    assert container["linuxParameters"]["initProcessEnabled"] is True
    assert not container["user"].startswith(("0", "root"))
    env = {item["name"]: item["value"] for item in container["environment"]}
    assert _PRODUCT_CODE.fullmatch(env["MARKETPLACE_PRODUCT_CODE"])
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)  # never baked keys
    assert "AWS_REGION" not in env  # the Region comes from the platform, never hard-coded
    assert "entryPoint" not in container  # the image's ENTRYPOINT must not be overridden
    assert "command" not in container or container["command"]


def _allowed_actions(policy: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        value = statement["Action"]
        actions.update([value] if isinstance(value, str) else value)
    return actions


@pytest.mark.parametrize("path", [ECS / "task-role-policy.json", EKS / "irsa-role-policy.json"])
def test_role_policy_grants_register_usage_and_nothing_else(path: Path) -> None:
    policy = load_json(path)
    assert policy["Version"] == "2012-10-17"
    assert _allowed_actions(policy) == {"aws-marketplace:RegisterUsage"}


def test_task_role_trust_policy_is_for_ecs_tasks() -> None:
    (statement,) = load_json(ECS / "task-role-trust-policy.json")["Statement"]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]


# -- EKS -----------------------------------------------------------------------------------------


def manifests() -> list[dict[str, Any]]:
    kustomization = load_yaml(EKS / "kustomization.yaml")[0]
    documents: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        documents.extend(load_yaml(EKS / resource))
    return documents


def by_kind(kind: str) -> dict[str, Any]:
    (document,) = [d for d in manifests() if d["kind"] == kind]
    return document


def test_kustomization_lists_existing_files() -> None:
    kustomization = load_yaml(EKS / "kustomization.yaml")[0]
    assert kustomization["kind"] == "Kustomization"
    for resource in kustomization["resources"]:
        assert (EKS / resource).is_file(), resource


@pytest.mark.parametrize("index", range(2))
def test_manifests_validate_against_kubernetes_schemas(index: int) -> None:
    document = manifests()[index]
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validation_catches_a_misspelt_field() -> None:
    deployment = copy.deepcopy(by_kind("Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_service_account_is_annotated_for_irsa() -> None:
    account = by_kind("ServiceAccount")
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.startswith("arn:aws:iam::")
    assert role.endswith(":role/marketplace-product-irsa")


def test_deployment_fields_that_matter() -> None:
    account = by_kind("ServiceAccount")
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0
    assert security["fsGroup"] == security["runAsGroup"]  # the IRSA token becomes readable
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert _PRODUCT_CODE.fullmatch(env["MARKETPLACE_PRODUCT_CODE"])
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ROLE_ARN"} & set(env)
    assert "command" not in container  # the image's ENTRYPOINT runs


def test_eksctl_role_matches_the_service_account() -> None:
    account = by_kind("ServiceAccount")
    (config,) = load_yaml(EKS / "eksctl-iamserviceaccount.yaml")
    (entry,) = config["iam"]["serviceAccounts"]
    assert entry["metadata"]["name"] == account["metadata"]["name"]
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.endswith("/" + entry["roleName"])
    assert entry["attachPolicyARNs"] == [
        "arn:aws:iam::aws:policy/AWSMarketplaceMeteringRegisterUsage"
    ]


def test_irsa_trust_policy_is_scoped_to_the_service_account() -> None:
    account = by_kind("ServiceAccount")
    (statement,) = load_json(EKS / "irsa-trust-policy.json")["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = statement["Condition"]["StringEquals"]
    subjects = [v for k, v in conditions.items() if k.endswith(":sub")]
    assert subjects == [f"system:serviceaccount:default:{account['metadata']['name']}"]
    assert [v for k, v in conditions.items() if k.endswith(":aud")] == ["sts.amazonaws.com"]


# -- contract-priced products (License Manager) -------------------------------------------------

CONTRACT_POLICIES = [ECS / "task-role-policy-contract.json", EKS / "irsa-role-policy-contract.json"]


@pytest.mark.parametrize("path", CONTRACT_POLICIES)
def test_contract_policy_grants_the_license_manager_actions_and_nothing_else(path: Path) -> None:
    from entrypoint.license.answers import LICENSE_ACTIONS

    policy = load_json(path)
    assert policy["Version"] == "2012-10-17"
    assert _allowed_actions(policy) == set(LICENSE_ACTIONS)
    # The seller guide's policy: no resource-level permissions for these actions.
    assert [statement["Resource"] for statement in policy["Statement"]] == ["*"]


@pytest.mark.parametrize("path", CONTRACT_POLICIES)
def test_each_license_manager_action_is_an_operation_of_the_api(path: Path) -> None:
    import botocore.session

    operations = set(
        botocore.session.get_session().get_service_model("license-manager").operation_names
    )
    for action in _allowed_actions(load_json(path)):
        service, _, operation = action.partition(":")
        assert service == "license-manager"
        assert operation in operations, action


def test_eksctl_contract_role_attaches_the_same_policy() -> None:
    (config,) = load_yaml(EKS / "eksctl-iamserviceaccount-contract.yaml")
    (metered,) = load_yaml(EKS / "eksctl-iamserviceaccount.yaml")
    (entry,) = config["iam"]["serviceAccounts"]
    assert entry["metadata"] == metered["iam"]["serviceAccounts"][0]["metadata"]
    assert entry["roleName"] == metered["iam"]["serviceAccounts"][0]["roleName"]
    assert entry["attachPolicy"] == load_json(EKS / "irsa-role-policy-contract.json")
    assert "attachPolicyARNs" not in entry
