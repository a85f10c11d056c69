"""What the project decides about a session's actions.

The pre-signals that let a project refuse a login or an operation, the
quotas that bound what an account stores, and the upload modes that decide
when an upload becomes visible. These are the rules a project tunes; the
handler only asks them.
"""
