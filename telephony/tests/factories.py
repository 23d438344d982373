"""factory_boy factories for telephony's models (one section per model, in the models' order).

They write rows directly, as test fixtures: to exercise the rules, go through
the services (telephony/services/).
"""

from __future__ import annotations

import secrets

import factory

from accounts.tests.factories import OrganizationFactory
from telephony.models import Agent, NumberSource, PhoneNumber

# --- agents -------------------------------------------------------------------------------


class AgentFactory(factory.django.DjangoModelFactory):
    """A valid agent with JagCall's defaults (disclosures on, no voice: the default voice)."""

    class Meta:
        model = Agent

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Receptionist {n}")
    system_prompt = "You are the friendly receptionist of a dental practice. Answer briefly and kindly."
    first_message = "Hello! How can I help you today?"


# --- phone numbers ------------------------------------------------------------------------


class PhoneNumberFactory(factory.django.DjangoModelFactory):
    """A held number of an organization (a row only: nothing is bought at Twilio)."""

    class Meta:
        model = PhoneNumber

    organization = factory.SubFactory(OrganizationFactory)
    # 555-01XX numbers are reserved for fiction and valid for `phonenumbers`.
    number = factory.Sequence(lambda n: f"+1415555{100 + n % 100:04d}")
    twilio_sid = factory.LazyFunction(lambda: "PN" + secrets.token_hex(16))
    account_sid = factory.LazyFunction(lambda: "AC" + secrets.token_hex(16))
    source = NumberSource.PURCHASED
    country = "US"
    voice_enabled = True
    sms_enabled = True
