"""The command's database connection, and error text with passwords masked."""

from __future__ import annotations

import argparse
import os
import typing as t
from urllib.parse import unquote

import pinnacle
from pinnacle.backends.loader import DEFAULT_URI

__all__ = ["database_uri", "connect", "one_line", "masked"]


def database_uri(args: argparse.Namespace) -> str:
    return args.db or os.environ.get("PINNACLE_URI") or DEFAULT_URI


def connect(args: argparse.Namespace, uri: t.Optional[str] = None, **options: t.Any) -> pinnacle.Datalayer:
    """Connect; :func:`main` closes the connection when the command ends."""
    db = pinnacle.connect(uri or database_uri(args), **options)
    args.opened.append(db)
    return db


def one_line(exc: BaseException, args: argparse.Namespace) -> str:
    """The error on one line, with any password of the URIs in play masked."""
    return masked(" ".join(str(exc).split()) or type(exc).__name__, args)


def masked(text: str, args: argparse.Namespace) -> str:
    for uri in (getattr(args, "db", None), os.environ.get("PINNACLE_URI")):
        secret = password_of(uri)
        if secret:
            for form in {secret, unquote(secret)}:
                text = text.replace(form, "***")
    return text


def password_of(uri: t.Optional[str]) -> t.Optional[str]:
    """The password part of ``scheme://user:password@host/...``, as written."""
    if not uri or "://" not in uri:
        return None
    userinfo, at, _host = uri.split("://", 1)[1].split("/", 1)[0].rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1] or None
