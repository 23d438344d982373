"""The project's routes plus the comparison route of bench/api.py.

``/bench/open-members`` answers exactly what ``GET /api/v1/members`` answers
for the benchmark's organization (same selector, serializer and cursor
pagination) with no authentication, no scope check, no rate limit and no
tenancy resolution: what the API would cost without its security layers.
Only the benchmark's settings (bench/api_settings.py) load this module.
"""

from django.conf import settings
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from accounts import selectors
from accounts.api.views import MembershipOutputSerializer
from accounts.models import Organization
from jagcall.kernel.api.pagination import CursorPagination
from jagcall.urls import handler403, handler404, handler500, urlpatterns as project_urlpatterns  # noqa: F401


class OpenMembershipListApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get(self, request):
        paginator = CursorPagination()
        organization = Organization(pk=settings.BENCH_ORGANIZATION_ID)
        page = paginator.paginate_queryset(selectors.membership_list(organization=organization), request, view=self)
        return paginator.get_paginated_response(MembershipOutputSerializer(page, many=True).data)


urlpatterns = [path("bench/open-members", OpenMembershipListApi.as_view()), *project_urlpatterns]
