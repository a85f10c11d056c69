"""A Django app that serves FTP and FTPS to the project's users."""

__version__ = "1.1.0"
