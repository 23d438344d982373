"""Simulated mode's "Simulate a caller": a scripted caller rings one of the organization's numbers.

There is no phone and no provider key: the Twilio stand-in (started by ``make run`` in another
process, jagcall/kernel/standins/simulated.py) rings the number as a caller would, our voice
webhook answers it like any call, and the stand-in's caller speaks its script (espeak-ng speech)
into the call's media stream, where the agent's conversation runs for real against the other
stand-ins. The web process asks for the ring over the stand-in's own HTTP route (not Twilio's
API), with the credentials that open the number's account.
"""

from __future__ import annotations

from django.conf import settings

from accounts.principals import as_principal
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import base_url, simulated_mode
from telephony.models import PhoneNumber
from telephony.services.twilio_accounts import twilio_for_account

PERMISSION = "product.use"  # as placing a call


def simulated_call_ring(*, organization, actor, number: PhoneNumber) -> str:
    """Have the simulated caller ring ``number`` (which must have an agent); the call's Twilio sid.

    Raises ApplicationError: 404 outside simulated mode, 409 when no agent answers the number,
    503 when the stand-in cannot be reached or refuses.
    """
    from jagcall.kernel.standins.simulated import DEFAULT_CALLER_SCRIPT, SIMULATED_CALLER_NUMBER
    from jagcall.kernel.standins.twilio.control import SimulatedCallerUnavailable, ring_simulated_caller

    principal = as_principal(actor, organization)
    principal.require(PERMISSION)
    if not simulated_mode():
        raise ApplicationError("Simulated callers exist only in simulated mode.", code="not_simulated", status=404)
    if number.organization_id != organization.pk:
        raise ApplicationError("No such number.", code="not_found", status=404)
    if number.agent_id is None:
        raise ApplicationError(
            f"No agent answers {number.number}: choose one under “Answered by” first.", code="no_agent", status=409
        )
    standin = base_url("twilio")
    if not standin:
        raise ApplicationError(
            "The simulated Twilio is not running: start the app with `make run` (it starts every stand-in).",
            code="standin_missing", status=503,
        )  # fmt: skip
    client = twilio_for_account(organization, number.account_sid).client
    try:
        call_sid = ring_simulated_caller(
            standin, account_sid=number.account_sid, username=client.username, password=client.password,
            to=number.number, from_=SIMULATED_CALLER_NUMBER, script=DEFAULT_CALLER_SCRIPT,
            timeout=float(settings.PROVIDER_TIMEOUT_SECONDS),
        )  # fmt: skip
    except SimulatedCallerUnavailable as error:
        raise ApplicationError(
            f"The simulated caller could not ring {number.number}: {error}. Restarting `make run` gives the "
            "simulated Twilio back the numbers the database holds.",
            code="standin_refused", status=503,
        ) from None  # fmt: skip
    audit_record(
        action="call.simulated",
        organization=organization,
        actor=principal,
        resource=number,
        metadata={"number": number.number, "script": DEFAULT_CALLER_SCRIPT, "call_sid": call_sid},
    )
    return call_sid
