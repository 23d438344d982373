"""compliance's cases for the cross-tenant walk (accounts/tests/urlwalk.py)."""

from __future__ import annotations

from accounts.principals import Principal
from compliance.services import do_not_call_add

_SYSTEM = Principal.system("tenancy walk")

_numbers = iter(range(10**6))


def _do_not_call_entry(org):
    return do_not_call_add(organization=org, actor=_SYSTEM, number=f"+1415555{next(_numbers) % 10000:04d}").id


# kwarg -> how to make an object of that kind inside an organization
OBJECT_KWARGS = {
    "do_not_call_id": _do_not_call_entry,
}
