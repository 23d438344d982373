"""The project's routes plus the comparison route of bench/calls_list.py.

``/bench/o/<slug>/calls-without-decryption/`` is the calls list page
(telephony.views.calls.CallListView: same query, same template, same
middleware) with one difference: the rows are built with a fixed
counterpart number instead of decrypting each call's other party, so the
difference between the two pages is what decrypting the shown column
costs. Only the benchmark's settings (bench/calls_settings.py) load this
module.
"""

from django.urls import path

from jagcall.urls import handler403, handler404, handler500, urlpatterns as project_urlpatterns  # noqa: F401
from telephony.selectors import calls as call_selectors
from telephony.services.calls import call_payload
from telephony.views.calls import CallListView

# The same shape as a real number, so the masked cell is as long as a real one.
PLACEHOLDER_NUMBER = "+16285550100"


def rows_without_decryption(calls):
    return [{"call": call, **call_payload(call, counterpart=PLACEHOLDER_NUMBER)} for call in calls]


class CallListWithoutDecryptionView(CallListView):
    """The calls page, its rows built without decrypting (the test client runs one request at a time)."""

    def get(self, request, org_slug):
        real = call_selectors.call_rows
        call_selectors.call_rows = rows_without_decryption
        try:
            return super().get(request, org_slug)
        finally:
            call_selectors.call_rows = real


urlpatterns = [
    path("bench/o/<slug:org_slug>/calls-without-decryption/", CallListWithoutDecryptionView.as_view()),
    *project_urlpatterns,
]
