"""Who may log in, and what an account may do once logged in.

Logging in is the costly part of a session (a password hash, a few queries)
and the part attackers aim at, so everything it touches lives together: the
authorizer and the session's view of it, the account lookup, the password
cache, the last-login writer, the lockout, the login loop that keeps
unauthenticated sessions off the session threads, the database worker pool,
and the path rules that decide what an account may do.
``django_ftpserver.authorizers`` stays the public import path.
"""
