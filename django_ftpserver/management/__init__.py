"""The ``manage.py`` commands of the app (see ``commands``)."""
