"""Django system checks for the ``FTPSERVER_*`` settings."""

from __future__ import annotations
