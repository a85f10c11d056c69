# The schema of django-ftpserver 1.0's 0001_initial, table for table and
# column for column: a database it migrated takes this one as applied.
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="FTPUserAccount",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "last_login",
                    models.DateTimeField(editable=False, null=True, verbose_name="Last login"),
                ),
                (
                    "home_dir",
                    models.CharField(
                        blank=True, max_length=1024, null=True, verbose_name="Home directory"
                    ),
                ),
            ],
            options={
                "verbose_name": "FTP user account",
                "verbose_name_plural": "FTP user accounts",
            },
        ),
        migrations.CreateModel(
            name="FTPUserGroup",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=30, unique=True, verbose_name="Group name")),
                (
                    "permission",
                    models.CharField(default="elradfmw", max_length=8, verbose_name="Permission"),
                ),
                (
                    "home_dir",
                    models.CharField(
                        blank=True, max_length=1024, null=True, verbose_name="Home directory"
                    ),
                ),
            ],
            options={
                "verbose_name": "FTP user group",
                "verbose_name_plural": "FTP user groups",
            },
        ),
        migrations.AddField(
            model_name="ftpuseraccount",
            name="group",
            field=models.ForeignKey(
                on_delete=models.deletion.CASCADE,
                to="django_ftpserver.ftpusergroup",
                verbose_name="FTP user group",
            ),
        ),
        migrations.AddField(
            model_name="ftpuseraccount",
            name="user",
            field=models.OneToOneField(
                on_delete=models.deletion.CASCADE,
                to=settings.AUTH_USER_MODEL,
                verbose_name="User",
            ),
        ),
    ]
