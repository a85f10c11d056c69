"""One module per ``manage.py`` command: serve, manage accounts, quotas, lockouts, sessions."""
