"""The behaviours of one FTP session, one concern per module.

``django_ftpserver.handlers`` composes ``DjangoFTPHandler`` and
``DjangoTLS_FTPHandler`` out of the mixins kept here, so that a reader
looking for one behaviour of a session (the lockout check at login, the
home-directory check, the TLS data channel, the replies to bad commands)
finds it by the module's name instead of inside one long class. The public
import path of the handlers stays ``django_ftpserver.handlers``.
"""
