"""What messaging announces to the rest of the platform (outbound webhooks subscribe here).

``message_event`` is sent on commit, once per change, with ``organization_id``,
``event`` (``message.received``, ``message.sent``, ``message.status_changed``,
``subscription.changed``) and ``payload`` (what an integrator is sent: ids,
numbers, status; a message's body only for ``message.received`` and
``message.sent``).
"""

from django.dispatch import Signal

message_event = Signal()
