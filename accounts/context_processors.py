from accounts.permissions import PERMISSIONS, has_permission
from accounts.selectors import organization_list_for_user


class _Can:
    """``{% if can.members_invite %}``: the permission table, for templates."""

    def __init__(self, role):
        self.role = role

    def __getattr__(self, name):
        # "api_keys_manage" -> "api_keys.manage": the dot may sit at any underscore.
        for index, char in enumerate(name):
            if char == "_":
                action = f"{name[:index]}.{name[index + 1:]}"
                if action in PERMISSIONS:
                    return has_permission(self.role, action)
        return False


def turnstile(request):
    from django.conf import settings

    return {
        "turnstile_enabled": settings.TURNSTILE_ENABLED,
        "turnstile_site_key": settings.TURNSTILE_SITE_KEY,
        "turnstile_script_url": settings.TURNSTILE_SCRIPT_URL,
    }


def portal(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "current_organization": getattr(request, "organization", None),
        "current_membership": membership,
        "user_organizations": organization_list_for_user(user=user),
        "can": _Can(membership.role if membership else None),
    }
