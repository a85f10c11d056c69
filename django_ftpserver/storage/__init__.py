"""Serving a Django storage as an FTP filesystem, one backend per module.

The generic filesystem needs only Django's ``Storage`` API; each backend
whose storage can do better (real directories on disk, listings and
multipart uploads on S3, prefixes on Google Cloud) has a patch of its own,
so that changing how one backend behaves never means reading another's
code. ``django_ftpserver.filesystems`` stays the public import path.
"""
