# Widen FTPUserGroup.permission to all ten pyftpdlib letters; help texts.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_ftpserver", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="ftpuseraccount",
            name="home_dir",
            field=models.CharField(
                blank=True,
                help_text="Overrides the group's home. '{username}' is replaced.",
                max_length=1024,
                null=True,
                verbose_name="Home directory",
            ),
        ),
        migrations.AlterField(
            model_name="ftpusergroup",
            name="home_dir",
            field=models.CharField(
                blank=True,
                help_text="'{username}' is replaced by the account's username.",
                max_length=1024,
                null=True,
                verbose_name="Home directory",
            ),
        ),
        migrations.AlterField(
            model_name="ftpusergroup",
            name="permission",
            field=models.CharField(
                default="elradfmw",
                help_text="pyftpdlib permission letters: e=cd, l=list, r=download, a=append, d=delete, f=rename, m=mkdir, w=upload, M=chmod, T=set mtime.",
                max_length=10,
                verbose_name="Permission",
            ),
        ),
    ]
