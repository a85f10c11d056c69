"""Running the server in production: what operators see of it.

Metrics for Prometheus, the HTTP endpoint that serves them with the health
checks, and the live-session registry behind the admin's session list and
the disconnect command. None of it changes what a client sees.
"""
