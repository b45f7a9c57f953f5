"""ResolveCustomer: a SaaS registration token, exchanged for who the buyer is.

After the API model's limits (RegistrationToken non-empty): InvalidTokenException for a token the
service never issued ("Registration token is invalid"); the product's injected faults and
DisabledApiException; ExpiredTokenException for a token past its lifetime or already redeemed
("the buyer has resubmitted the registration token, or your application has held on to the
registration token for too long"). The answer carries CustomerAWSAccountId, LicenseArn,
ProductCode, Metadata.AgreementId, and CustomerIdentifier only for customers that have one ("For
new SaaS product integrations, the CustomerIdentifier field is not populated").
"""

from __future__ import annotations

from typing import Any

from entrypoint.emulator.model import modelled_error
from entrypoint.emulator.protocol import Reply, RequestContext
from entrypoint.emulator.state import EmulatorState, Outcome
from entrypoint.emulator.tokens import TokenSigner

from .common import product

__all__ = ["resolve_customer"]

OPERATION = "ResolveCustomer"


def resolve_customer(
    state: EmulatorState, _signer: TokenSigner, _ctx: RequestContext, body: dict[str, Any]
) -> Reply:
    token: str = body["RegistrationToken"]
    with state.lock:
        issued = state.registrations.get(token)
    if issued is None:
        raise modelled_error(OPERATION, "InvalidTokenException", "Registration token is invalid")
    behavior = product(state, OPERATION, issued.product_code)
    if behavior.outcome is Outcome.DISABLED_API:
        raise modelled_error(OPERATION, "DisabledApiException", "The API is disabled")
    with state.lock:
        if token in state.resolved or state.clock() >= issued.expires_at:
            raise modelled_error(
                OPERATION, "ExpiredTokenException", "Registration token has expired"
            )
        state.redeem(token)
        customer = state.find_customer(
            product_code=issued.product_code, aws_account_id=issued.aws_account_id
        )
    if customer is None:  # the customer was removed after the token was issued
        raise modelled_error(OPERATION, "InvalidTokenException", "Registration token is invalid")
    answer: dict[str, Any] = {
        "ProductCode": customer.product_code,
        "CustomerAWSAccountId": customer.aws_account_id,
    }
    if customer.identifier is not None:
        answer["CustomerIdentifier"] = customer.identifier
    if customer.license_arn is not None:
        answer["LicenseArn"] = customer.license_arn
    if customer.agreement_id is not None:
        answer["Metadata"] = {"AgreementId": customer.agreement_id}
    return Reply(answer)
