"""The accept side: which connections the server takes, and from whom.

Decided before any session exists, on the accepting thread: the connection
limits per address and in total, and the PROXY protocol header that tells
the real client address behind a load balancer.
"""
