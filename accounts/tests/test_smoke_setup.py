def test_fixtures_make_two_separate_organizations(owner, other_owner, organization, other_organization):
    from accounts.models import Membership

    assert Membership.objects.for_org(organization).get().user == owner
    assert Membership.objects.for_org(other_organization).get().user == other_owner
