from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("demo", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="ftpauditlog",
            name="reason",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AlterField(
            model_name="ftpauditlog",
            name="event_type",
            field=models.CharField(
                choices=[
                    ("login", "Login"),
                    ("upload", "Upload"),
                    ("download", "Download"),
                    ("delete", "Delete"),
                    ("refused", "Refused"),
                ],
                max_length=20,
            ),
        ),
    ]
