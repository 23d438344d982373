"""The pre-dial gate: each rule, its code and message, at the edges of the calling window."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from accounts.entitlements import plan_limit
from accounts.models import OrganizationStatus
from compliance.services import do_not_call_add
from telephony.services import dialing
from telephony.services.dialing import DialRefused, pre_dial_check, pre_dial_gate
from telephony.tests.outbound_support import make_number

pytestmark = pytest.mark.django_db

NEW_YORK = "+12125550123"  # America/New_York only
IDAHO = "+12085550123"  # area code 208: America/Boise (Mountain) and America/Los_Angeles (Pacific)
RUSSIAN_MOBILE = "+79123456789"  # +7 912: Europe/Bucharest ... Asia/Anadyr
AUSTRALIAN_MOBILE = "+61412345678"  # a mobile: Perth to Lord Howe, Christmas and Cocos islands
TOLL_FREE = "+18005550123"  # anywhere in the NANP, Guam to Honolulu

# 2027-01-15: winter, New York is UTC-5, Boise UTC-7, Los Angeles UTC-8.
WINTER = dt.date(2027, 1, 15)


def at(local: str, zone: str, day: dt.date = WINTER) -> dt.datetime:
    hours, minutes, *seconds = (int(part) for part in local.split(":"))
    naive = dt.datetime.combine(day, dt.time(hours, minutes, seconds[0] if seconds else 0))
    return naive.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


def codes(organization, to, now, from_number=None):
    return [r.code for r in pre_dial_check(organization=organization, to_number=to, from_number=from_number, now=now)]


def test_the_rules_are_a_list_in_a_stable_order():
    assert [rule.__name__ for rule in dialing.RULES] == [
        "invalid_number",
        "no_calling_rights",
        "billing_standing",
        "caller_number",
        "do_not_call",
        "concurrent_calls",
        "spend_cap",
        "calling_hours",
    ]


# --- invalid_number -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "to", ["", "2125550123", "+1 212 555 0123", "+1 (212) 555-0123", "+1212", "tel:+12125550123", "+999123456"]
)
def test_a_number_not_in_e164_or_not_valid_is_refused(organization, to):
    refusals = pre_dial_check(organization=organization, to_number=to, now=at("12:00", "America/New_York"))
    assert [r.code for r in refusals] == ["invalid_number"]  # the other rules do not pile up on a bad number
    assert refusals[0].field == "to"
    assert "+14155550100" in refusals[0].message or "+12125550123" in refusals[0].message


def test_spaces_are_refused_with_the_number_to_write(organization):
    (refusal,) = pre_dial_check(
        organization=organization, to_number="+1 212 555 0123", now=at("12:00", "America/New_York")
    )
    assert refusal.message == "Write the number in E.164, without spaces or punctuation: +12125550123."


# --- calling hours ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "local,allowed",
    [
        ("07:59:59", False),
        ("08:00:00", True),
        ("12:00", True),
        ("20:59:59", True),
        ("21:00:00", False),
        ("03:00", False),
    ],
)
def test_calling_window_edges_in_the_callees_time(organization, local, allowed):
    now = at(local, "America/New_York")
    assert codes(organization, NEW_YORK, now) == ([] if allowed else ["calling_hours"])


def test_the_window_follows_daylight_saving(organization):
    summer = dt.date(2027, 7, 15)  # New York is UTC-4
    assert codes(organization, NEW_YORK, at("07:59:59", "America/New_York", summer)) == ["calling_hours"]
    assert codes(organization, NEW_YORK, at("08:00", "America/New_York", summer)) == []
    assert codes(organization, NEW_YORK, dt.datetime(2027, 7, 15, 12, 0, tzinfo=dt.UTC)) == []  # 08:00 EDT
    assert codes(organization, NEW_YORK, dt.datetime(2027, 1, 15, 12, 0, tzinfo=dt.UTC)) == [
        "calling_hours"
    ]  # 07:00 EST


def test_the_refusal_says_the_local_time_and_when_calling_opens(organization):
    with pytest.raises(DialRefused) as refused:
        pre_dial_gate(organization=organization, to_number=NEW_YORK, now=at("07:30", "America/New_York"))
    error = refused.value
    assert error.code == "calling_hours" and error.status == 422 and error.field == "to"
    assert "it is 07:30 in America/New_York" in error.message
    assert "Calling opens at 08:00 America/New_York time (2027-01-15 13:00 UTC, in 30 min)" in error.message


def test_after_closing_calling_opens_the_next_morning(organization):
    (refusal,) = pre_dial_check(organization=organization, to_number=NEW_YORK, now=at("21:00", "America/New_York"))
    assert "it is 21:00 in America/New_York" in refusal.message
    assert "2027-01-16 13:00 UTC, in 11 h" in refusal.message


def test_every_zone_of_a_multi_zone_number_must_be_in_the_window(organization):
    assert dialing.time_zones_of(IDAHO) == ["America/Boise", "America/Los_Angeles"]
    # 08:00 in Boise is 07:00 in Los Angeles: refused, and the message names the zone still closed.
    (refusal,) = pre_dial_check(organization=organization, to_number=IDAHO, now=at("08:00", "America/Boise"))
    assert refusal.code == "calling_hours"
    assert "in every time zone +12085550123 may be in (2)" in refusal.message
    assert (
        "it is 07:00 in America/Los_Angeles" in refusal.message
        and "America/Boise" not in refusal.message.split("it is")[1]
    )
    assert "Calling opens at 08:00 America/Los_Angeles time" in refusal.message
    assert codes(organization, IDAHO, at("07:59:59", "America/Los_Angeles")) == ["calling_hours"]
    assert codes(organization, IDAHO, at("08:00", "America/Los_Angeles")) == []
    # 20:59:59 in Boise is still inside for both; 21:00 in Boise closes it although Los Angeles is at 20:00.
    assert codes(organization, IDAHO, at("20:59:59", "America/Boise")) == []
    assert codes(organization, IDAHO, at("21:00", "America/Boise")) == ["calling_hours"]


def test_a_whole_country_mobile_range_opens_when_its_last_zone_does(organization):
    zones = dialing.time_zones_of(RUSSIAN_MOBILE)
    assert len(zones) > 10 and "Europe/Moscow" in zones and "Asia/Kamchatka" in zones
    # Noon in Moscow is 21:00 in Kamchatka (UTC+12): refused.
    assert codes(organization, RUSSIAN_MOBILE, at("12:00", "Europe/Moscow")) == ["calling_hours"]
    # 09:00 in Bucharest (UTC+2) is 19:00 in Kamchatka/Anadyr (UTC+12): everyone is inside.
    assert codes(organization, RUSSIAN_MOBILE, at("09:00", "Europe/Bucharest")) == []
    opens = dialing.calling_opens_at([dialing.ZoneInfo(z) for z in zones], at("12:00", "Europe/Moscow"))
    assert opens == at("08:00", "Europe/Bucharest", dt.date(2027, 1, 16))  # the westernmost zone opens last


def test_an_australian_mobile_needs_every_state_awake(organization):
    assert "Australia/Perth" in dialing.time_zones_of(AUSTRALIAN_MOBILE)
    assert codes(organization, AUSTRALIAN_MOBILE, at("08:30", "Australia/Sydney")) == [
        "calling_hours"
    ]  # 05:30 in Perth
    assert codes(organization, AUSTRALIAN_MOBILE, at("13:00", "Australia/Sydney")) == []


def test_a_toll_free_number_may_be_anywhere_in_the_nanp(organization):
    # 42 zones from Guam to Pago Pago: noon in New York is 03:00 in Guam.
    (refusal,) = pre_dial_check(organization=organization, to_number=TOLL_FREE, now=at("12:00", "America/New_York"))
    assert refusal.code == "calling_hours" and "may be in (42)" in refusal.message
    assert "more zones outside the window" in refusal.message
    assert "(2027-01-15 22:00 UTC, in 5 h)" in refusal.message  # 08:00 in Guam, 11:00 in Pago Pago, 17:00 in New York
    assert codes(organization, TOLL_FREE, dt.datetime(2027, 1, 15, 22, 0, tzinfo=dt.UTC)) == []


def test_zones_too_far_apart_share_no_window(organization, monkeypatch):
    zones = ["America/Los_Angeles", "Asia/Shanghai", "Europe/London"]  # eight hours apart each, in winter
    assert dialing.calling_opens_at([dialing.ZoneInfo(z) for z in zones], at("12:00", "Europe/London")) is None
    monkeypatch.setattr(dialing, "time_zones_of", lambda number: zones)
    (refusal,) = pre_dial_check(organization=organization, to_number=NEW_YORK, now=at("12:00", "Europe/London"))
    assert "too far apart to share a calling window" in refusal.message


def test_an_unknown_zone_is_refused(organization, monkeypatch):
    # A valid number for which phonenumbers knows no zone (its data says Etc/Unknown).
    monkeypatch.setattr(dialing, "time_zones_of", lambda number: [])
    (refusal,) = pre_dial_check(organization=organization, to_number=NEW_YORK, now=at("12:00", "America/New_York"))
    assert refusal.code == "calling_hours" and "time zone is unknown" in refusal.message


def test_now_must_be_aware(organization):
    with pytest.raises(ValueError):
        pre_dial_check(organization=organization, to_number=NEW_YORK, now=dt.datetime(2027, 1, 15, 12))


# --- do_not_call, no_calling_rights, caller_number -----------------------------------------


def test_a_number_on_the_do_not_call_list_is_refused(organization, other_organization, owner):
    now = at("12:00", "America/New_York")
    do_not_call_add(organization=organization, actor=owner, number=NEW_YORK)
    with pytest.raises(DialRefused) as refused:
        pre_dial_gate(organization=organization, to_number=NEW_YORK, now=now)
    assert refused.value.code == "do_not_call" and "do-not-call list" in refused.value.message
    assert codes(other_organization, NEW_YORK, now) == []  # another organization's list is its own


def test_an_organization_that_is_not_active_cannot_call(organization):
    organization.status = OrganizationStatus.TERMINATED
    (refusal,) = pre_dial_check(organization=organization, to_number=NEW_YORK, now=at("12:00", "America/New_York"))
    assert refusal.code == "no_calling_rights" and refusal.field is None and "terminated" in refusal.message


def test_the_caller_number_must_be_an_active_voice_number_of_the_organization(organization, other_organization):
    now = at("12:00", "America/New_York")
    mine = make_number(organization, "+14155550100")
    assert codes(organization, NEW_YORK, now, from_number=mine) == []
    assert codes(organization, NEW_YORK, now, from_number="+14155550100") == []
    theirs = make_number(other_organization, "+14155550111")
    no_voice = make_number(organization, "+14155550122", voice_enabled=False)
    released = make_number(organization, "+14155550133", released_at=now)
    for caller in (theirs, no_voice, released, "+14155550111", "+14155550199", "nonsense"):
        refusals = pre_dial_check(organization=organization, to_number=NEW_YORK, from_number=caller, now=now)
        assert [r.code for r in refusals] == ["caller_number"], caller
        assert refusals[0].field == "from" and "Phone numbers" in refusals[0].message


def test_check_returns_every_refusal_and_the_gate_the_first(organization, owner):
    organization.status = OrganizationStatus.TERMINATED
    do_not_call_add(organization=organization, actor=owner, number=NEW_YORK)
    now = at("22:00", "America/New_York")
    assert codes(organization, NEW_YORK, now, from_number="+14155550199") == [
        "no_calling_rights",
        "caller_number",
        "do_not_call",
        "calling_hours",
    ]
    with pytest.raises(DialRefused) as refused:
        pre_dial_gate(organization=organization, to_number=NEW_YORK, from_number="+14155550199", now=now)
    assert refused.value.code == "no_calling_rights"


def test_the_gate_returns_the_destination_when_every_rule_passes(organization):
    assert pre_dial_gate(organization=organization, to_number=NEW_YORK, now=at("12:00", "America/New_York")) == NEW_YORK


def test_another_app_registers_a_rule_before_calling_hours(organization, monkeypatch):
    monkeypatch.setattr(dialing, "RULES", list(dialing.RULES))

    def opted_out(organization, to_number, from_number, now):
        return dialing.Refusal("opted_out", "This number replied STOP.", "to")

    dialing.register_rule(opted_out, before="calling_hours")
    dialing.register_rule(opted_out, before="calling_hours")  # once only
    assert [rule.__name__ for rule in dialing.RULES][-2:] == ["opted_out", "calling_hours"]
    assert codes(organization, NEW_YORK, at("22:00", "America/New_York")) == ["opted_out", "calling_hours"]


def test_the_gate_reads_only(organization, django_assert_max_num_queries):
    # the caller number, the do-not-call lookup, the count of calls under way and the spend cap's flag;
    # nothing written
    with django_assert_max_num_queries(4):
        pre_dial_check(
            organization=organization,
            to_number=NEW_YORK,
            from_number="+14155550100",
            now=at("12:00", "America/New_York"),
        )


def test_simulated_mode_always_has_an_example_destination_inside_calling_hours(organization):
    """The place-call page suggests example numbers to call in simulated mode: at any time of day, in
    winter and in summer, at least one is inside 08:00-21:00 there and passes the gate."""
    line = make_number(organization)
    for day in (WINTER, dt.date(2027, 7, 15)):
        for minutes in range(0, 24 * 60, 30):
            now = dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60), tzinfo=dt.UTC)
            suggested = dialing.destinations_open_now(now=now)
            assert suggested, now
            for example in suggested:
                assert codes(organization, example["number"], now, from_number=line) == [], (now, example)
    assert dialing.destinations_open_now(now=at("10:00", "America/New_York"), limit=1) == [
        {"number": "+12125550143", "place": "New York", "local_time": "10:00"}
    ]


# --- concurrent_calls ---------------------------------------------------------------------


def test_a_call_beyond_the_plans_lines_is_refused_until_one_ends(organization):
    from telephony.models import Call, CallDirection

    noon = at("12:00", "America/New_York")
    live = [
        Call.objects.create(organization=organization, direction=CallDirection.OUTBOUND, to_number=NEW_YORK,
                            from_number="+14155550100", status=status)
        for status in ["in-progress", "ringing", "queued", "in-progress", "initiated"]
    ]  # fmt: skip
    Call.objects.create(organization=organization, direction=CallDirection.INBOUND, status="completed",
                        from_number="+14155550100", to_number=NEW_YORK)  # fmt: skip
    assert codes(organization, NEW_YORK, noon) == ["concurrent_call_limit"]  # starter: 5 at once
    with pytest.raises(DialRefused) as refused:
        pre_dial_gate(organization=organization, to_number=NEW_YORK, now=noon)
    assert "allows 5 calls at once" in refused.value.refusal.message
    assert "The Pro plan allows 25" in refused.value.refusal.message
    live[0].status = "completed"
    live[0].save()
    assert codes(organization, NEW_YORK, noon) == []
    organization.plan_code = "pro"
    live[0].status = "in-progress"
    live[0].save()
    assert codes(organization, NEW_YORK, noon) == []  # pro: 25


def test_a_contracts_limit_replaces_the_plans(organization):
    from telephony.models import Call, CallDirection

    noon = at("12:00", "America/New_York")
    for _ in range(2):
        Call.objects.create(organization=organization, direction=CallDirection.OUTBOUND, to_number=NEW_YORK,
                            from_number="+14155550100", status="in-progress")  # fmt: skip
    organization.concurrent_calls_limit = 2  # below the starter plan's 5
    assert codes(organization, NEW_YORK, noon) == ["concurrent_call_limit"]
    organization.concurrent_calls_limit = 500  # above the enterprise plan's 100
    assert plan_limit(organization, "concurrent_calls") == 500 and codes(organization, NEW_YORK, noon) == []
    organization.concurrent_calls_limit = None
    assert plan_limit(organization, "concurrent_calls") == 5
