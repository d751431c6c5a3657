"""Who may use a server and how much: decided once at start-up from the address it listens on."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

LOOPBACK_NAMES = ("localhost",)
MIN_TOKEN_CHARS = 16


class PolicyError(ValueError):
    """The server's options are unsafe or inconsistent; the message says what to pass instead."""


@dataclass(frozen=True)
class Policy:
    """What the server allows.

    Args:
        token: the shared secret for the API (Bearer) and the chat's sign-in; None: no sign-in.
        allow_changes: uploads and document removal are offered.
        rate: questions per second each client may ask on average (0: no limit).
        burst: questions a client may ask at once before the rate applies.
        max_body_bytes: the largest request body on the JSON API (the chat and uploads have their own).
    """

    token: str | None = None
    allow_changes: bool = True
    rate: float = 10.0
    burst: int = 20
    max_body_bytes: int = 64_000


def is_loopback(host: str) -> bool:
    """Does binding `host` keep the server reachable from this machine only?"""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def read_token(env: dict[str, str], token_file: str | None) -> str | None:
    """The access token from a file (QA_TOKEN_FILE / --token-file) or the QA_TOKEN variable, never
    from the command line (it would stay in shell history and the process list)."""
    path = token_file or env.get("QA_TOKEN_FILE")
    if path:
        try:
            token = Path(path).read_text("utf-8").strip()
        except OSError as exc:
            raise PolicyError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    else:
        token = (env.get("QA_TOKEN") or "").strip() or None
    if token is not None and (len(token) < MIN_TOKEN_CHARS or re.search(r"\s", token)):
        raise PolicyError(f"the access token must be at least {MIN_TOKEN_CHARS} characters with no spaces")
    return token


def decide(host: str, token: str | None, public: bool = False, allow_uploads: bool | None = None,
           rate: float = 10.0, burst: int = 20, max_body_bytes: int = 64_000) -> Policy:
    """The policy for a server bound to `host`.

    On loopback nothing is required. Beyond loopback a token is required unless `public` says the
    operator means it, and uploads/removal stay off unless `allow_uploads` turns them on.

    Raises:
        PolicyError: beyond loopback with neither a token nor `public`; or a bad limit.
    """
    local = is_loopback(host)
    if not local and token is None and not public:
        raise PolicyError(f"listening on {host} needs an access token (QA_TOKEN or --token-file), "
                          "or --public to serve everyone without one")
    if rate < 0 or burst < 1 or max_body_bytes < 1_000:
        raise PolicyError("rate must be >= 0, burst >= 1 and the body limit >= 1000 bytes")
    changes = local if allow_uploads is None else allow_uploads
    return Policy(token=token, allow_changes=changes, rate=rate, burst=burst, max_body_bytes=max_body_bytes)


def environment() -> dict[str, str]:
    """The process environment as a plain dict (a seam for tests)."""
    return dict(os.environ)
