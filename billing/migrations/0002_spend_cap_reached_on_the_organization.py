"""The month the spend cap was reached moves to the organization row, where the gates read it."""

from django.db import migrations


def forwards(apps, schema_editor):
    BillingAccount = apps.get_model("billing", "BillingAccount")
    Organization = apps.get_model("accounts", "Organization")
    db = schema_editor.connection.alias  # the tables' owner migrates, not the application's role
    for organization_id, month in BillingAccount.objects.using(db).filter(cap_reached_month__isnull=False).values_list(
        "organization_id", "cap_reached_month"
    ):
        Organization.objects.using(db).filter(pk=organization_id).update(spend_cap_reached_month=month)


def backwards(apps, schema_editor):
    BillingAccount = apps.get_model("billing", "BillingAccount")
    Organization = apps.get_model("accounts", "Organization")
    db = schema_editor.connection.alias
    for organization_id, month in Organization.objects.using(db).filter(spend_cap_reached_month__isnull=False).values_list(
        "pk", "spend_cap_reached_month"
    ):
        BillingAccount.objects.using(db).filter(organization_id=organization_id).update(cap_reached_month=month)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0009_organization_spend_cap_reached_month"),
        ("billing", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
        migrations.RemoveField(model_name="billingaccount", name="cap_reached_month"),
    ]
