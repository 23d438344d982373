"""Opt-out and opt-in per (sending number, recipient number): one service changes a subscription.

Every change takes effect at once (the gate reads the row), is kept in the
subscription's history (``SubscriptionChange``) and in the audit log (the
recipient masked), and is announced. A free-text revocation is flagged for
review; a member undoes a false positive with ``subscription_undo_opt_out``
(one click in the thread), which is audited with who did it.
"""

from __future__ import annotations

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.principals import Principal, as_principal
from compliance.actors import resolve_actor
from compliance.services import audit_record
from jagcall.kernel import rows
from jagcall.kernel.errors import ApplicationError
from messaging.models import ChangeVia, Message, Subscription, SubscriptionChange
from messaging.services.events import announce, masked
from telephony.models import PhoneNumber


def _subscription_locked(phone_number: PhoneNumber, recipient: str) -> Subscription | None:
    """The pair's row, locked for this transaction (FOR UPDATE), or None: never changed, so subscribed.

    One read by the pair's unique index (phone_number, recipient_index), in plain SQL built from the
    model (``jagcall.kernel.rows``): every STOP and START asks, and the ORM's query building cost more
    than the read. No ORDER BY, which would let the planner walk the primary key instead."""
    candidates = Subscription._meta.get_field("recipient_index").candidates(
        recipient, organization_id=phone_number.organization_id
    )
    matches, candidate = rows.equals_any("s.recipient_index", candidates)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {rows.columns(Subscription, 's')} FROM {Subscription._meta.db_table} AS s "  # noqa: S608 (the model's table)
            f"WHERE s.organization_id = %s AND s.phone_number_id = %s AND {matches} LIMIT 1 FOR UPDATE",
            [phone_number.organization_id, phone_number.pk, candidate],
        )
        row = cursor.fetchone()
    return rows.instance(Subscription, row, using=connection.alias) if row else None


@transaction.atomic(savepoint=False)  # its callers' errors end their whole transaction: no savepoint to pay for
def subscription_set(
    *,
    phone_number: PhoneNumber,
    recipient: str,
    subscribed: bool,
    via: str,
    actor,
    keyword: str = "",
    message: Message | None = None,
    flagged: bool = False,
    locked=rows.UNREAD,
) -> SubscriptionChange | None:
    """Set the pair's subscription; the change recorded, or None when it already was so (nothing written).

    ``locked``: the pair's row as this transaction read it FOR UPDATE (None: there is none), or ``UNREAD``
    to have it read here."""
    organization = phone_number.organization
    subscription = _subscription_locked(phone_number, recipient) if locked is rows.UNREAD else locked
    if subscription is None and subscribed:
        return None  # never unsubscribed: nothing to re-subscribe
    now = timezone.now()
    change = SubscriptionChange(
        organization=organization,
        subscribed=subscribed,
        via=via,
        keyword=keyword,
        message=message,
        flagged_for_review=flagged,
        actor_label=resolve_actor(actor, None).label[:254],
        created_at=now,
    )
    needs_review = bool(flagged and not subscribed)
    written = False
    if subscription is None:  # the pair's first change: its row is written unsubscribed, with the change
        change.subscription = subscription = Subscription(
            organization_id=phone_number.organization_id, phone_number=phone_number, recipient=recipient,
            subscribed=False, needs_review=needs_review, changed_at=now,
        )  # fmt: skip
        try:
            with transaction.atomic():
                rows.save(subscription, change)
            written = True
        except IntegrityError:  # a concurrent change created it: wait for it, then read what it left
            subscription = _subscription_locked(phone_number, recipient)  # the change was not written: reused
    if not written:
        if subscription.subscribed == subscribed:
            return None
        subscription.subscribed = subscribed
        subscription.needs_review = needs_review
        subscription.changed_at = now
        change.subscription = subscription
        rows.save((subscription, ["subscribed", "needs_review", "changed_at"]), change)
    action = "sms_subscription.resubscribed" if subscribed else "sms_subscription.unsubscribed"
    audit_record(
        action=action,
        organization=organization,
        actor=actor,
        resource=subscription,
        metadata={
            "sender": phone_number.number,  # the organization's own line: not personal data
            "recipient": masked(recipient),
            "via": via,
            "keyword": keyword,
            "flagged_for_review": flagged,
        },
    )
    announce(
        organization.id,
        "subscription.changed",
        {
            "sender": phone_number.number,
            "recipient": recipient,
            "subscribed": subscribed,
            "via": via,
            "keyword": keyword,
            "flagged_for_review": flagged,
            "at": now.isoformat(),
        },
    )
    return change


def unsubscribe_everywhere(*, organization, recipient: str, via: str, actor, keyword: str, message=None) -> int:
    """STOPALL: the recipient leaves every number of the organization. Returns how many pairs changed."""
    changed = 0
    for number in PhoneNumber.objects.for_org(organization).filter(released_at__isnull=True):
        if subscription_set(
            phone_number=number, recipient=recipient, subscribed=False, via=via, actor=actor, keyword=keyword,
            message=message,
        ):  # fmt: skip
            changed += 1
    return changed


@transaction.atomic
def subscription_undo_opt_out(*, organization, actor, subscription: Subscription) -> SubscriptionChange:
    """A member undoes an opt-out that was read from free text by mistake (audited with who did it).

    Only a flagged (free-text) opt-out can be undone here: a keyword or a carrier's refusal is the
    person's unambiguous choice, and only they can reverse it (by texting START).
    """
    principal = as_principal(actor, organization)
    principal.require("product.use")
    subscription = Subscription.objects.for_org(organization).select_for_update().get(pk=subscription.pk)
    if subscription.subscribed or not subscription.needs_review:
        raise ApplicationError(
            "Only an opt-out read from the person's own words, still waiting for review, can be undone. "
            "A keyword opt-out is reversed only by the person texting START.",
            code="not_undoable",
            status=409,
        )
    change = subscription_set(
        phone_number=subscription.phone_number,
        recipient=subscription.recipient,
        subscribed=True,
        via=ChangeVia.MEMBER_UNDO,
        actor=principal,
    )
    return change


@transaction.atomic
def subscription_confirm_opt_out(*, organization, actor, subscription: Subscription) -> None:
    """A member read a flagged opt-out and agrees: it stays, no longer flagged (audited)."""
    principal = as_principal(actor, organization)
    principal.require("product.use")
    subscription = Subscription.objects.for_org(organization).select_for_update().get(pk=subscription.pk)
    if not subscription.needs_review:
        return
    subscription.needs_review = False
    subscription.save(update_fields=["needs_review"])
    audit_record(
        action="sms_subscription.review_confirmed",
        organization=organization,
        actor=principal,
        resource=subscription,
        metadata={"sender": subscription.phone_number.number, "recipient": masked(subscription.recipient)},
    )


def webhook_actor(organization) -> Principal:
    return Principal.webhook("twilio", organization=organization)
