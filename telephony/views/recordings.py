"""Portal: a call's recording (streamed, decrypted on the fly) and the post-call steps' retry."""

from __future__ import annotations

import re

from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import NoReverseMatch, path, reverse
from django.views import View

from accounts.mixins import OrganizationViewMixin
from accounts.tenancy import get_for_org_or_404
from jagcall.kernel.errors import ApplicationError
from telephony.models import Call, CallRecording, StepStatus
from telephony.services.recordings import post_call_retry, recording_chunks

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """(start, end) inclusive for a single-range ``Range`` header; None to send it all; "unsatisfiable".

    Several ranges or a malformed header are ignored (the whole file is sent, as RFC 9110 allows).
    """
    match = _RANGE.match((header or "").strip().replace(" ", ""))
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        return "unsatisfiable"
    return start, end


def _no_store(response):
    response["Cache-Control"] = "private, no-store"
    response["Accept-Ranges"] = "bytes"
    return response


class CallRecordingView(OrganizationViewMixin, View):
    """The call's recording, decrypted as it streams, with byte ranges so the player can seek (members only)."""

    permission_required = "product.use"
    http_method_names = ["get", "head"]

    def get(self, request, org_slug, call_id):
        call = get_for_org_or_404(Call, organization=self.organization, pk=call_id)
        recording = CallRecording.objects.for_org(self.organization).filter(call=call).first()
        if recording is None or recording.status != StepStatus.DONE or not recording.audio or recording.size_bytes is None:
            return _no_store(HttpResponse("This call has no stored recording (yet).", status=404, content_type="text/plain"))
        size = recording.size_bytes
        wanted = parse_range(request.headers.get("Range", ""), size)
        if wanted == "unsatisfiable":
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return _no_store(response)
        start, end = wanted if wanted is not None else (0, size - 1)
        chunks = recording_chunks(recording=recording, start=start, end=end) if request.method != "HEAD" else iter(())
        response = StreamingHttpResponse(chunks, status=206 if wanted is not None else 200,
                                         content_type=recording.content_type or "audio/wav")  # fmt: skip
        response["Content-Length"] = str(end - start + 1)
        if wanted is not None:
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Disposition"] = f'inline; filename="call-{call.id}.wav"'
        return _no_store(response)


class PostCallRetryView(OrganizationViewMixin, View):
    """Queue the failed post-call step of a call again (audited)."""

    permission_required = "product.use"
    http_method_names = ["post"]

    def post(self, request, org_slug, call_id):
        call = get_for_org_or_404(Call, organization=self.organization, pk=call_id)
        try:
            step = post_call_retry(call=call, actor=self.principal)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"The {step} step was queued again; this page shows its progress.")
        try:
            target = reverse("telephony:call-detail", kwargs={"org_slug": self.organization.slug, "call_id": call.id})
        except NoReverseMatch:
            target = f"/o/{self.organization.slug}/"
        return redirect(target)


urlpatterns = [
    path("calls/<uuid:call_id>/recording", CallRecordingView.as_view(), name="call-recording"),
    path("calls/<uuid:call_id>/post-call/retry", PostCallRetryView.as_view(), name="call-post-call-retry"),
]
