"""The container platforms' local endpoints, emulated: what ECS, Fargate and EC2 give a task.

Served on the emulator's own port, beside the Metering API:

* ECS task metadata v4 (``ECS_CONTAINER_METADATA_URI_V4`` = ``<url>/ecs/v4/<container>``):
  ``GET <uri>/task`` answers the task's ``TaskARN`` and ``AvailabilityZone``, as ECS does.
* ECS container credentials (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` =
  ``<url>/ecs/credentials/<id>``): the task role's temporary credentials, for the task's own id
  only, optionally behind an authorization token (``AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]``),
  and optionally "not ready yet" for the first N requests, as in the first seconds of a task. Any
  other id is answered as the ECS agent answers it: HTTP 400 ``InvalidIdInRequest``
  ("CredentialsV2Request: Credentials not found"; amazon-ecs-agent,
  ``ecs-agent/tmds/handlers/v1/credentials_handler.go``).
* EC2 IMDSv2 (``AWS_EC2_METADATA_SERVICE_ENDPOINT`` = ``<url>/``): ``PUT /latest/api/token`` then
  ``GET /latest/meta-data/placement/region`` and the instance (node) role's credentials.
* STS ``AssumeRoleWithWebIdentity`` (``AWS_ENDPOINT_URL_STS`` = ``<url>/sts``), the call IRSA
  makes: the Query protocol's XML answer with credentials for any role and token, so tests can
  put faults on it (`Endpoint.STS`). moto stays the STS that checks what it is sent.

Credentials handed out here are registered with the emulator, so the Metering API accepts
requests signed with them (and only those, plus what it was told about). Every answer names its
`entrypoint.emulator.faults.Endpoint`, so an injected fault can replace it.
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from .sigv4 import Principal

__all__ = ["PlatformResponse", "PlatformState", "PlatformTask"]

ACCOUNT = "111122223333"
IMDS_TOKEN_TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105 - a header name
IMDS_TOKEN_HEADER = "x-aws-ec2-metadata-token"  # noqa: S105 - a header name


@dataclass(frozen=True, slots=True)
class PlatformTask:
    """What the emulated platform says about the task. Change it with `PlatformState.configure`.

    ``task_arn`` / ``availability_zone``: include them in task metadata (ECS on EC2 before
    platform 1.4 had no AvailabilityZone). ``credentials_token``: the Authorization value the
    credentials endpoint requires (None: none). ``credentials_failures``: the next N credential
    requests answer HTTP 500. ``role_allowed`` / ``node_role_allowed``: whether the task role /
    instance role may call aws-marketplace actions. ``credentials_lifetime``: how long what the
    endpoints (and STS) hand out is valid; under botocore's 10-minute mandatory refresh window,
    every signature refreshes them first.
    """

    launch_type: str = "FARGATE"
    task_arn: bool = True
    availability_zone: bool = True
    role_arn: str = f"arn:aws:iam::{ACCOUNT}:role/marketplace-task-role"
    role_allowed: bool = True
    credentials_token: str | None = None
    credentials_failures: int = 0
    node_role: str = "eks-node-role"
    node_role_allowed: bool = True
    metadata_failures: int = 0
    credentials_lifetime: float = 6 * 3600.0  # seconds until the credentials handed out expire


@dataclass(frozen=True, slots=True)
class PlatformResponse:
    status: int
    body: str
    content_type: str = "application/json"
    endpoint: str = ""  # the `entrypoint.emulator.faults.Endpoint` that answered


_STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


class PlatformState:
    """The platform endpoints' state; thread-safe."""

    def __init__(self, region: str, register: Callable[[Principal], None]) -> None:
        self.region = region
        self.task = PlatformTask()
        self._register = register
        self._imds_tokens: set[str] = set()
        self._lock = threading.Lock()
        self.task_id = secrets.token_hex(16)

    def configure(self, **changes: Any) -> PlatformTask:  # noqa: ANN401 - PlatformTask fields
        with self._lock:
            self.task = replace(self.task, **changes)
            return self.task

    # -- handlers ----------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes = b""
    ) -> PlatformResponse | None:
        """Answer a platform request, or None if ``path`` is not a platform path."""
        route = path.split("?", 1)[0]
        if route.startswith("/ecs/v4/"):
            return replace(self._task_metadata(method, route), endpoint="task-metadata")
        if route.startswith("/ecs/credentials/"):
            answer = self._container_credentials(method, route, headers)
            return replace(answer, endpoint="container-credentials")
        if route.startswith("/latest/"):
            return self._imds(method, route, headers)
        if route == "/sts" or route.startswith("/sts/"):
            return replace(self._sts(method, body), endpoint="sts", content_type="text/xml")
        return None

    def _task_metadata(self, method: str, route: str) -> PlatformResponse:
        if method != "GET":
            return PlatformResponse(405, json.dumps({"message": "Method Not Allowed"}))
        with self._lock:
            task = self.task
            if task.metadata_failures > 0:
                self.task = replace(task, metadata_failures=task.metadata_failures - 1)
                return PlatformResponse(500, json.dumps({"message": "internal error"}))
        parts = route.rstrip("/").split("/")  # ['', 'ecs', 'v4', '<container>', 'task']
        if len(parts) == 5 and parts[4] == "task":
            cluster = f"arn:aws:ecs:{self.region}:{ACCOUNT}:cluster/default"
            body: dict[str, Any] = {
                "Cluster": cluster,
                "Family": "marketplace-product",
                "Revision": "3",
                "DesiredStatus": "RUNNING",
                "KnownStatus": "RUNNING",
                "LaunchType": task.launch_type,
                "Containers": [],
            }
            if task.task_arn:
                body["TaskARN"] = f"arn:aws:ecs:{self.region}:{ACCOUNT}:task/default/{self.task_id}"
            if task.availability_zone:
                body["AvailabilityZone"] = f"{self.region}a"
            return PlatformResponse(200, json.dumps(body))
        if len(parts) == 4:
            return PlatformResponse(200, json.dumps({"DockerId": parts[3], "Name": "product"}))
        return PlatformResponse(404, json.dumps({"message": "Not Found"}))

    def _issue(self, arn: str, *, allowed: bool) -> dict[str, str]:
        principal = Principal(
            access_key_id="ASIA" + secrets.token_hex(8).upper(),
            secret_access_key=secrets.token_urlsafe(30),
            session_token=secrets.token_urlsafe(48),
            arn=arn,
            allowed=allowed,
        )
        self._register(principal)
        lifetime = timedelta(seconds=self.task.credentials_lifetime)
        expiration = (datetime.now(UTC) + lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert principal.session_token is not None  # noqa: S101 - set just above
        return {
            "AccessKeyId": principal.access_key_id,
            "SecretAccessKey": principal.secret_access_key,
            "Token": principal.session_token,
            "Expiration": expiration,
        }

    def _container_credentials(
        self, method: str, route: str, headers: Mapping[str, str]
    ) -> PlatformResponse:
        if method != "GET":
            return PlatformResponse(405, json.dumps({"message": "Method Not Allowed"}))
        # The ECS agent's answer for a missing or unknown id: HTTP 400 and its ErrorMessage
        # (code, message and HTTPErrorCode, which it marshals too).
        credentials_id = route.removeprefix("/ecs/credentials/")
        if credentials_id != self.task_id:
            code, text = (
                ("InvalidIdInRequest", "Credentials not found")
                if credentials_id
                else ("NoIdInRequest", "No Credential ID in the request")
            )
            error = {"code": code, "message": f"CredentialsV2Request: {text}", "HTTPErrorCode": 400}
            return PlatformResponse(400, json.dumps(error))
        with self._lock:
            task = self.task
            if task.credentials_failures > 0:
                self.task = replace(task, credentials_failures=task.credentials_failures - 1)
                return PlatformResponse(500, json.dumps({"message": "credentials not ready"}))
        if task.credentials_token is not None and headers.get("authorization") != (
            task.credentials_token
        ):
            return PlatformResponse(401, json.dumps({"message": "Unauthorized"}))
        session = "ecs-task-" + self.task_id[:8]
        assumed = task.role_arn.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/")
        body = self._issue(f"{assumed}/{session}", allowed=task.role_allowed)
        body["RoleArn"] = task.role_arn
        return PlatformResponse(200, json.dumps(body))

    def _imds(self, method: str, route: str, headers: Mapping[str, str]) -> PlatformResponse:
        answer = self._imds_answer(method, route, headers)
        if route == "/latest/api/token":
            endpoint = "imds-token"
        elif route.startswith("/latest/meta-data/iam/"):
            endpoint = "imds-credentials"
        else:
            endpoint = "imds-metadata"
        return replace(answer, endpoint=endpoint)

    def _imds_answer(self, method: str, route: str, headers: Mapping[str, str]) -> PlatformResponse:
        if route == "/latest/api/token":
            if method != "PUT" or IMDS_TOKEN_TTL_HEADER not in headers:
                return PlatformResponse(400, "", "text/plain")
            token = secrets.token_urlsafe(32)
            with self._lock:
                self._imds_tokens.add(token)
            return PlatformResponse(200, token, "text/plain")
        with self._lock:
            valid = headers.get(IMDS_TOKEN_HEADER) in self._imds_tokens
        if not valid:  # IMDSv2 only: no token, no answer
            return PlatformResponse(401, "", "text/plain")
        if route == "/latest/meta-data/placement/region":
            return PlatformResponse(200, self.region, "text/plain")
        if route == "/latest/meta-data/placement/availability-zone":
            return PlatformResponse(200, f"{self.region}a", "text/plain")
        prefix = "/latest/meta-data/iam/security-credentials/"
        task = self.task
        if route == prefix:
            return PlatformResponse(200, task.node_role, "text/plain")
        if route == prefix + task.node_role:
            arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{task.node_role}/i-0123456789abcdef0"
            body: dict[str, str] = {
                "Code": "Success",
                "LastUpdated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Type": "AWS-HMAC",
                **self._issue(arn, allowed=task.node_role_allowed),
            }
            return PlatformResponse(200, json.dumps(body))
        return PlatformResponse(404, "", "text/plain")

    def _sts(self, method: str, body: bytes) -> PlatformResponse:
        """AssumeRoleWithWebIdentity in the Query protocol (form in, XML out), for any role and
        any token: what IRSA asks STS for (the pod's projected token for the role's credentials)."""
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if method == "POST" else {}
        action = form.get("Action", [""])[0]
        if action != "AssumeRoleWithWebIdentity":
            return _sts_error(400, "InvalidAction", f"Could not find operation {action!r}")
        role_arn = form.get("RoleArn", [""])[0]
        session_name = form.get("RoleSessionName", [""])[0] or "web-identity"
        if not role_arn or not form.get("WebIdentityToken", [""])[0]:
            return _sts_error(400, "MissingParameter", "RoleArn and WebIdentityToken are required")
        role = role_arn.rpartition("/")[2]
        account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ACCOUNT
        arn = f"arn:aws:sts::{account}:assumed-role/{role}/{session_name}"
        issued = self._issue(arn, allowed=self.task.role_allowed)
        credentials = "".join(
            f"<{name}>{escape(issued[key])}</{name}>"
            for name, key in (
                ("AccessKeyId", "AccessKeyId"),
                ("SecretAccessKey", "SecretAccessKey"),
                ("SessionToken", "Token"),
                ("Expiration", "Expiration"),
            )
        )
        document = (
            f'<AssumeRoleWithWebIdentityResponse xmlns="{_STS_NAMESPACE}">'
            "<AssumeRoleWithWebIdentityResult>"
            f"<AssumedRoleUser><Arn>{escape(arn)}</Arn>"
            f"<AssumedRoleId>AROA{secrets.token_hex(8).upper()}:{escape(session_name)}"
            "</AssumedRoleId></AssumedRoleUser>"
            f"<Credentials>{credentials}</Credentials>"
            "<Audience>sts.amazonaws.com</Audience>"
            "</AssumeRoleWithWebIdentityResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</AssumeRoleWithWebIdentityResponse>"
        )
        return PlatformResponse(200, document)


def _sts_error(status: int, code: str, message: str) -> PlatformResponse:
    """The Query protocol's error document."""
    document = (
        f'<ErrorResponse xmlns="{_STS_NAMESPACE}"><Error><Type>Sender</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return PlatformResponse(status, document)
