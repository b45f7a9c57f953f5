"""The two credential sources a Marketplace container uses, served on loopback for the image tests.

* The container credentials endpoint (botocore's ``container-role`` provider): ECS task roles,
  reached through ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` plus ``AWS_CONTAINER_AUTHORIZATION_TOKEN``
  (botocore accepts plain HTTP only on loopback and the ECS/EKS link-local addresses).
* STS ``AssumeRoleWithWebIdentity`` (botocore's ``assume-role-with-web-identity`` provider): IAM
  roles for service accounts on EKS, reached through ``AWS_ENDPOINT_URL_STS``.

Each hands out its own access key id, so the Metering emulator's records show which provider
signed the RegisterUsage call. The answers follow the shapes of the real services: the JSON the
ECS agent serves, and STS's query-protocol XML (botocore's sts/2011-06-15 model). Every request
is recorded for the test to assert on.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

ECS_ACCESS_KEY = "ASIAECSTASKROLE00001"
ECS_SECRET = "ecs-secret"
ECS_SESSION_TOKEN = "ecs-session-token"
IRSA_ACCESS_KEY = "ASIAIRSAWEBIDENTITY1"
IRSA_SECRET = "irsa-secret"
IRSA_SESSION_TOKEN = "irsa-session-token"
CONTAINER_TOKEN = "container-authorization-token"
EXPIRATION = "2099-01-01T00:00:00Z"

_STS_ANSWER = """<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:default:product</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <AssumedRoleId>AROATEST:marketplace</AssumedRoleId>
      <Arn>{role}/marketplace</Arn>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{key}</AccessKeyId>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <SessionToken>{token}</SessionToken>
      <Expiration>{expiration}</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
"""


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.record(Request("GET", self.path, dict(self.headers)))
        if self.headers.get("Authorization") != CONTAINER_TOKEN:
            self._answer(401, b'{"message": "bad token"}', "application/json")
            return
        body = {
            "AccessKeyId": ECS_ACCESS_KEY,
            "SecretAccessKey": ECS_SECRET,
            "Token": ECS_SESSION_TOKEN,
            "Expiration": EXPIRATION,
            "RoleArn": "arn:aws:iam::123456789012:role/ecs-task",
        }
        self._answer(200, json.dumps(body).encode(), "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        self.server.record(Request("POST", self.path, dict(self.headers), form))
        if form.get("Action") != "AssumeRoleWithWebIdentity":
            self._answer(400, b"<Error><Code>InvalidAction</Code></Error>", "text/xml")
            return
        answer = _STS_ANSWER.format(
            role=form.get("RoleArn", ""),
            key=IRSA_ACCESS_KEY,
            secret=IRSA_SECRET,
            token=IRSA_SESSION_TOKEN,
            expiration=EXPIRATION,
        )
        self._answer(200, answer.encode(), "text/xml")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[Request] = []
        self.lock = threading.Lock()

    def record(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)


class CredentialSources:
    """Both endpoints on one loopback port: GET for container credentials, POST for STS."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[Request]:
        with self._server.lock:
            return list(self._server.requests)
