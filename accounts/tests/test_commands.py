from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Membership, Organization, User
from accounts.permissions import Role

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_org_with_a_new_owner_prints_what_it_made():
    output = run("create_org", "--name", "Bright Smiles", "--owner-email", "Boss@Bright.test")
    organization = Organization.objects.get(slug="bright-smiles")
    owner = User.objects.get(email="boss@bright.test")
    assert Membership.objects.for_org(organization).get(user=owner).role == Role.OWNER
    assert "Bright Smiles" in output and "bright-smiles" in output and "boss@bright.test" in output
    assert "Generated password:" in output
    password = output.split("Generated password:")[1].split()[0]
    assert owner.check_password(password)


def test_create_org_reuses_an_existing_user(owner):
    output = run("create_org", "--name", "Second Office", "--owner-email", owner.email)
    assert "existing account" in output
    assert Membership.objects.unscoped("test: inspects rows directly").filter(user=owner).count() == 2


def test_create_org_refuses_duplicates_clearly(organization, owner):
    with pytest.raises(CommandError, match="already taken"):
        run("create_org", "--name", "Other", "--slug", organization.slug, "--owner-email", "new@x.test")
    assert not User.objects.filter(email="new@x.test").exists()  # nothing half-made


def test_create_org_refuses_a_weak_password():
    with pytest.raises(CommandError, match="too short|too common"):
        run("create_org", "--name", "Weak", "--owner-email", "w@x.test", "--owner-password", "abc")
    assert not Organization.objects.filter(name="Weak").exists()


def test_seed_demo_is_idempotent_and_prints_credentials():
    first = run("seed_demo")
    run("seed_demo")
    organization = Organization.objects.get(slug="acme-dental")
    roles = dict(Membership.objects.for_org(organization).values_list("user__email", "role"))
    assert roles == {
        "owner@acme-dental.test": Role.OWNER,
        "admin@acme-dental.test": Role.ADMIN,
        "member@acme-dental.test": Role.MEMBER,
    }
    assert "owner@acme-dental.test" in first and "password:" in first
    assert User.objects.get(email="support@jagcall.test").is_staff
