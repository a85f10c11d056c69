"""Benchmarks of django-ftpserver against bare pyftpdlib: ``python -m bench``.

See ``docs/performance.rst`` for what is measured and why.
"""
