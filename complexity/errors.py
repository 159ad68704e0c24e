"""One line for an exception, the form every error message of this package uses,
and :class:`OptionError`: a bad argument, named as the Python parameter it was
given to (the command line names the same thing by its flag, :meth:`OptionError.text`).

>>> reason(ValueError("bad size\\nsecond line"))
'ValueError: bad size'
>>> reason(KeyError())
'KeyError'
"""
from __future__ import annotations

from typing import Callable, Optional

__all__ = ["reason", "Worded", "OptionError", "Given", "NAMED", "literal"]


def reason(e: BaseException) -> str:
    """``"TypeName: first line of the message"`` (at most 200 characters of it); an
    :class:`OptionError` is the ``ValueError`` of a bad argument and reads as one.

    >>> reason(OptionError("{trainable} matches nothing", trainable="x*"))
    "ValueError: trainable='x*' matches nothing"
    """
    text = str(e).strip().splitlines()
    name = "ValueError" if type(e) is OptionError else type(e).__name__
    return f"{name}: {text[0][:200]}" if text else name


class _Named:
    def __repr__(self):
        return "NAMED"


#: a parameter a message names without a value ("lora needs targets=GLOB")
NAMED = _Named()


class Given:
    """A value a message shows: ``name=repr(value)`` in Python, ``--flag shown`` on
    the command line (``shown``: how the command line wrote it; ``repr(value)`` if
    None). ``parameter``: the parameter named, when a message names one twice (its
    second field then has a name of its own)."""

    def __init__(self, value, shown: Optional[str] = None, parameter: Optional[str] = None):
        self.value, self.shown, self.parameter = value, shown, parameter


def literal(text: str) -> str:
    """``text`` for a message template: its braces doubled.

    >>> literal("{'a': 1}")
    "{{'a': 1}}"
    """
    return text.replace("{", "{{").replace("}", "}}")


class Worded(Exception):
    """An error whose message names parameters: ``template`` names the
    parameters as ``{name}`` fields; each keyword is one of them: :data:`NAMED`, a
    :class:`Given` or a plain value. ``str(e)`` names Python parameters
    (``trainable='x.*'``); :meth:`text` with a ``flag`` function names the command
    line's flags (``--trainable 'x.*'``). ``parameter`` and ``value``: the first one
    named. With no keyword the template is the message as written (no field, and
    its braces as they are). Mixed into an
    exception type (:class:`OptionError`, a ``ValueError``; a ``RuntimeError`` that
    hints at an option).

    >>> e = OptionError("{trainable} matches no parameter name", trainable="x.*")
    >>> str(e), e.parameter, e.value
    ("trainable='x.*' matches no parameter name", 'trainable', 'x.*')
    >>> e.text(lambda name: "--" + name)
    "--trainable 'x.*' matches no parameter name"
    >>> OptionError("{lora} needs targets=GLOB", lora=NAMED).text(lambda name: "--" + name)
    '--lora needs targets=GLOB'
    """

    def __init__(self, template: str, **mentions):
        self.template = template
        self.mentions = {n: v if isinstance(v, (Given, _Named)) else Given(v)
                         for n, v in mentions.items()}
        first = next(iter(self.mentions.items()), (None, NAMED))
        self.parameter = first[0]
        self.value = None if first[1] is NAMED else first[1].value
        super().__init__(self.text())

    def text(self, flag: Optional[Callable[[str], str]] = None) -> str:
        """The message, naming each parameter as Python does, or by ``flag(name)``."""
        if not self.mentions:
            return self.template

        def named(name, given):
            name = getattr(given, "parameter", None) or name
            if flag is None:
                return name if given is NAMED else f"{name}={given.value!r}"
            if given is NAMED:
                return flag(name)
            return f"{flag(name)} {given.shown if given.shown is not None else repr(given.value)}"

        return self.template.format(**{n: named(n, g) for n, g in self.mentions.items()})


class OptionError(Worded, ValueError):
    """A value given to a parameter that cannot be used (see :class:`Worded`)."""
