"""One line for an exception, the form every error message of this package uses.

>>> reason(ValueError("bad size\\nsecond line"))
'ValueError: bad size'
>>> reason(KeyError())
'KeyError'
"""
from __future__ import annotations


def reason(e: BaseException) -> str:
    """``"TypeName: first line of the message"`` (at most 200 characters of it)."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__
