"""The organization of a keyset becomes a plain UUID column: the kernel imports no app.

The column keeps its name, type and data (``organization_id``, uuid, primary
key, so still unique and indexed); only the foreign key constraint to the
organizations table goes. Keys of a deleted organization are destroyed by the
tenant registration (``jagcall.kernel.crypto.registry``) instead.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('crypto', '0002_platformkeyset'),
    ]

    operations = [
        migrations.AlterField(
            model_name='organizationkeyset',
            name='organization',
            field=models.UUIDField(db_column='organization_id', primary_key=True, serialize=False),
        ),
        migrations.RenameField(
            model_name='organizationkeyset',
            old_name='organization',
            new_name='organization_id',
        ),
        migrations.AlterField(
            model_name='organizationkeyset',
            name='rotated_at',
            field=models.DateTimeField(blank=True, help_text='When the last new primary key was added (older keys stopped being primary then)', null=True),
        ),
    ]
