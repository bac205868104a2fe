"""Storage and tracking URLs as they may be shown: in MLflow's tags and in error lines,
never with a credential.

A database URL carries its password in two places: `user:password@host`, and query
parameters (`?password=...`, libpq's `sslpassword=`, an S3 key's `secret=`...). Both are
replaced by `***`, as SQLAlchemy shows a URL; the user name, host and database stay, so
the line still says which store it was. Text that is not a URL (a libpq `key=value`
string given by mistake) has its secret values replaced the same way.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit

HIDDEN = "***"
# Names of parameters whose value is a secret: password, passwd, pwd, sslpassword, secret,
# token, api_key, access_key, sig (a signed URL's signature), credentials...
SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|sig|cred|auth", re.IGNORECASE)
KEYWORD_SECRET = re.compile(r"(\b[\w.-]*(?:" + SECRET_NAME.pattern + r")[\w.-]*\s*=\s*)(\S+)",
                            re.IGNORECASE)  # fmt: skip


def redacted(url: str) -> str:
    """`url` with its password and secret query values each shown as `***`."""
    if "://" not in url:
        return KEYWORD_SECRET.sub(rf"\g<1>{HIDDEN}", url)
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    netloc = f"{user}{colon and ':' + HIDDEN}{at}{hostport}"
    query = "&".join(
        f"{key}={HIDDEN}" if has_value and _is_secret(key) else f"{key}{has_value}{value}"
        for key, has_value, value in _pairs(parts.query)
    )
    # Put together by hand: urlunsplit drops the empty host of sqlite:////abs/path.
    return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))  # fmt: skip


def without_secrets(text: str, url: str) -> str:
    """`text` (an error message, say) with `url` shown redacted and each of its secrets,
    as written or decoded, replaced by `***`: a driver's message may quote them."""
    if not url:
        return text
    text = text.replace(url, redacted(url))
    for secret in sorted(_secrets(url), key=len, reverse=True):  # no half-replaced secret
        text = text.replace(secret, HIDDEN)
    return text


def _secrets(url: str) -> set[str]:
    if "://" not in url:
        found = [match[1] for match in KEYWORD_SECRET.finditer(url)]
    else:
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        found = [userinfo.partition(":")[2]] if ":" in userinfo else []
        found += [value for key, _, value in _pairs(parts.query) if _is_secret(key)]
    return {text for value in found if value for text in (value, unquote_plus(value))}


def _pairs(query: str) -> list[tuple[str, str, str]]:
    """A query's `key=value` pairs as written: (key, "=" or "", value)."""
    return [pair.partition("=") for pair in query.split("&") if pair]


def _is_secret(key: str) -> bool:
    return bool(SECRET_NAME.search(unquote_plus(key)))
