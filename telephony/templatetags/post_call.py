"""``{% post_call_overview call as post_call %}``: the post-call steps of a call, for templates/telephony/calls/_post_call.html."""

from django import template

register = template.Library()


@register.simple_tag
def post_call_overview(call):
    from telephony.services.post_call import post_call_overview as overview

    return overview(call=call)
