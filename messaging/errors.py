"""What Twilio's messaging error codes mean, in words a member can act on.

The codes are Twilio's (its error dictionary); the texts are ours. A code not
listed here is shown with a pointer to Twilio's page for it.
"""

from __future__ import annotations

UNSUBSCRIBED_RECIPIENT = 21610

MEANINGS: dict[int, str] = {
    21211: "The destination is not a valid phone number.",
    21408: "Sending to this country is not enabled on the Twilio account.",
    21602: "The message has no text and no media.",
    21606: "The sending number cannot send texts from this Twilio account.",
    21610: "The recipient has unsubscribed (texted STOP) from this number; nothing can be sent until they text START.",
    21612: "Twilio cannot route a text between these two numbers.",
    21614: "The destination is not a mobile number, so it cannot receive texts.",
    21617: "The text is longer than 1,600 characters.",
    30001: "The message queue overflowed; try again later.",
    30002: "The Twilio account is suspended.",
    30003: "The destination phone is unreachable (switched off or out of coverage).",
    30004: "The recipient blocked messages from this number.",
    30005: "The destination number is unknown or no longer in service.",
    30006: "The destination is a landline or cannot receive texts.",
    30007: "The carrier filtered the message as spam.",
    30008: "The carrier could not deliver it, for a reason it did not give.",
    30034: "The US sending number is not registered for A2P 10DLC; carriers block its texts.",
}


def twilio_error_meaning(code: int | None) -> str:
    if not code:
        return ""
    return MEANINGS.get(int(code), f"Twilio error {code}: see twilio.com/docs/api/errors/{code}.")
