"""``{% unread_messages organization as unread %}``: the organization's unread texts, for the navigation's badge."""

from __future__ import annotations

from django import template

register = template.Library()


@register.simple_tag
def unread_messages(organization) -> int:
    """The total of the organization's unread counts: one aggregate query (messaging.selectors.unread_total)."""
    from messaging.selectors import unread_total

    return unread_total(organization) if organization is not None else 0
