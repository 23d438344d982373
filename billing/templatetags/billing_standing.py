"""``{% billing_standing_notice organization as notice %}``: what the banner under the header says about billing.

Every organization page shows it (templates/billing/_standing_banner.html, included by base.html). In good
standing it costs nothing: the organization already carries its standing; only a past-due organization's
pages read its billing account, for the date service will be restricted.
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def billing_standing_notice(organization) -> dict | None:
    """None in good standing; else {"standing": "past_due" | "restricted", "restrict_on": datetime | None}."""
    from accounts.entitlements import Standing

    standing = getattr(organization, "billing_standing", Standing.GOOD) if organization is not None else Standing.GOOD
    if standing == Standing.RESTRICTED:
        return {"standing": standing, "restrict_on": None}
    if standing != Standing.PAST_DUE:
        return None
    from billing.selectors import billing_account_of

    account = billing_account_of(organization)
    since = account.past_due_since if account is not None else None
    restrict_on = since + dt.timedelta(days=int(settings.BILLING_GRACE_DAYS)) if since else None
    return {"standing": standing, "restrict_on": restrict_on}
