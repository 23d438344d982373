"""A call recording at Twilio: its media, streamed down, and its deletion (twilio SDK).

The media URL is built from the recording's SID and the account it lives in,
never taken from the callback's ``RecordingUrl``, so a callback cannot make us
fetch another host. The download goes through the SDK client's own HTTP
session (its transport, timeouts, connection retries and base-URL rewrite) with
the client's credentials; the SDK's ``request()`` is not used for it because it
decodes every body as text, which would corrupt the audio, and reads it whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from jagcall.kernel.providers import ProviderError, provider_operation

MEDIA_URL = "https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Recordings/{sid}.wav"
CHUNK = 256 * 1024
AUDIO_TYPES = ("audio/", "application/octet-stream")


@contextmanager
def recording_media(access, recording_sid: str) -> Iterator[tuple[str, Iterator[bytes]]]:
    """(content type, chunks) of the recording's WAV media; the connection closes on exit."""
    client = access.client
    http = client.http_client
    url = MEDIA_URL.format(account_sid=access.account_sid, sid=recording_sid)
    if hasattr(http, "rewrite"):
        url = http.rewrite(url)
    with provider_operation("twilio", "download recording"):
        response = http.session.get(url, auth=client.auth, stream=True, timeout=http.timeout, allow_redirects=True)
        try:
            response.raise_for_status()
        except Exception:
            response.close()
            raise
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if not content_type.startswith(AUDIO_TYPES):
        response.close()
        raise ProviderError("twilio", "download recording", f"Twilio answered with {content_type or 'no content type'}, not audio")

    def chunks() -> Iterator[bytes]:
        with provider_operation("twilio", "download recording"):
            yield from response.iter_content(CHUNK)

    try:
        yield ("audio/wav" if content_type in ("audio/x-wav", "audio/wave") else content_type), chunks()
    finally:
        response.close()


def recording_delete(access, recording_sid: str) -> bool:
    """Delete the recording at Twilio; True when deleted now, False when it was already gone."""
    try:
        with provider_operation("twilio", "delete recording"):
            access.client.api.v2010.accounts(access.account_sid).recordings(recording_sid).delete()
    except ProviderError as error:
        if error.status == 404:
            return False
        raise
    return True
