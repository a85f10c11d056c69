"""Asking the pre-operation signals whether an FTP operation may happen.

A project decides in its own receivers: a receiver of ``ftp_pre_upload``
(or any other ``ftp_pre_*`` signal) that raises
``django.core.exceptions.PermissionDenied("reason")`` refuses the
operation, and the client gets ``550 reason`` (``530 reason`` for a login).
Any other exception refuses too: a policy that cannot be evaluated must
not let the operation through (fail closed). It is logged with its
traceback, and the client gets a generic reply that tells nothing of it.

The first receiver that refuses ends the asking; the receivers connected
after it are not called.

With no receiver connected, asking costs one attribute read: the handler
checks ``Signal.receivers`` before building any argument.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.core.exceptions import PermissionDenied
from django.dispatch import Signal

from .. import dispatch
from ..auth.workers import on_worker

# Named as before the module moved into its package: LOGGING configs name it.
logger = logging.getLogger("django_ftpserver.policy")

#: Reply text when a receiver refused without a reason.
DEFAULT_REASON = "Permission denied."
#: Reply text when a receiver failed: nothing of the error reaches the client.
FAILED_REASON = "Operation refused by the server's policy."
#: Longest reason sent to the client, in characters.
MAX_REASON_LENGTH = 200

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class Refusal(Exception):
    """An operation refused by a pre-signal receiver; ``reason`` is one line of text."""

    def __init__(self, reason: str, failed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        #: True when a receiver raised something else than PermissionDenied.
        self.failed = failed


def one_line(reason: Any) -> str:
    """``reason`` as one line of reply text: no CR, LF or other control character.

    A reason with a line break would let a receiver's text (which may
    quote a file name the client chose) inject a reply of its own.
    """
    text = " ".join(_CONTROL.sub(" ", str(reason)).split())
    if len(text) > MAX_REASON_LENGTH:
        text = text[: MAX_REASON_LENGTH - 3].rstrip() + "..."
    return text or DEFAULT_REASON


def has_receivers(signal: Signal) -> bool:
    """Cheap test that anything is connected to ``signal`` at all."""
    return bool(signal.receivers)


def ask(signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal``; raise ``Refusal`` if a receiver refuses or fails.

    On a session thread the thread's database connections are closed
    afterwards, as for every signal (see ``dispatch``); a login worker keeps
    its connection for the next login.
    """
    if not signal.receivers or not signal.has_listeners(sender):
        return
    try:
        signal.send(sender=sender, **kwargs)
    except PermissionDenied as exc:
        reason = one_line(exc.args[0] if exc.args else "")
        raise Refusal(reason) from None
    except Exception:
        logger.exception("A receiver of %s failed; the operation is refused", _name_of(signal))
        raise Refusal(FAILED_REASON, failed=True) from None
    finally:
        if not on_worker():
            dispatch.release_connections()


def _name_of(signal: Signal) -> str:
    from .. import signals

    for name, value in vars(signals).items():
        if value is signal:
            return name
    return repr(signal)
