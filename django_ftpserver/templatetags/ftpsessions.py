"""Filters of the "FTP sessions" admin page."""

from __future__ import annotations

import datetime

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def session_time(timestamp: float) -> str:
    """A session's start (a Unix time) in the current time zone, to the second."""
    moment = datetime.datetime.fromtimestamp(float(timestamp), tz=datetime.timezone.utc)
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


@register.filter
def duration(seconds: float) -> str:
    """``3725`` -> ``1 h 2 min``; ``42`` -> ``42 s``."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
