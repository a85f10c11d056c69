from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "demo"
    verbose_name = "FTP demo"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the @receiver functions; importing is all it takes.
        from . import receivers  # noqa: F401
