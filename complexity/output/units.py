"""Human units for tables: bytes in binary units (KiB, MiB, GiB, TiB), FLOPs in
decimal units (kFLOPs, MFLOPs, GFLOPs, TFLOPs, PFLOPs), both to 3 significant digits.

Why two bases: memory is allocated and reported (torch.cuda, nvidia-smi) in powers
of two, while FLOP rates are quoted by vendors in powers of ten.  The
rule is the same for both: pick the largest unit in which the value is at least
1, then round to 3 significant digits; a value that would print as 1000 or more
of a unit moves up one (1023 bytes is ``0.999 KiB``, 1000 KiB is ``0.977 MiB``).
Integers below 1000 print exactly.  These strings are for people; ``--format json`` and CSV values keep the exact integers.

>>> bytes_text(102_760_448)
'98.0 MiB'
>>> flops_text(4_089_184_256)
'4.09 GFLOPs'
"""
from __future__ import annotations

from typing import Sequence, Tuple

BYTE_UNITS: Tuple[str, ...] = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB")
FLOP_UNITS: Tuple[str, ...] = ("FLOPs", "kFLOPs", "MFLOPs", "GFLOPs", "TFLOPs", "PFLOPs", "EFLOPs", "ZFLOPs")


def three_digits(x: float) -> str:
    """``x`` (1 <= |x| < 1000 after scaling) to 3 significant digits, trailing zeros kept.

    >>> [three_digits(v) for v in (1.0, 9.996, 12.34, 123.4, 999.6)]
    ['1.00', '10.0', '12.3', '123', '1000']
    """
    if x == 0:
        return "0"
    # Round first so 9.996 -> 10.0 (not 10.00): digits after the point follow
    # the magnitude of the *rounded* value.
    r = float(f"{x:.3g}")
    mag = len(str(int(abs(r))))  # digits before the point
    return f"{r:.{max(0, 3 - mag)}f}"


def scaled_text(n: float, base: int, units: Sequence[str]) -> str:
    """``n`` in the largest of ``units`` (each ``base`` times the one before) that keeps
    it at least 1, to 3 significant digits; below ``base`` the exact integer.  A value
    that would print as 1000 or more of a unit moves up one (so at most 3 digits ever
    stand before the point: 1000 KiB is ``0.977 MiB``, not ``1000 KiB``).

    >>> scaled_text(1536, 1024, BYTE_UNITS)
    '1.50 KiB'
    >>> scaled_text(1000 * 1024, 1024, BYTE_UNITS)
    '0.977 MiB'
    >>> scaled_text(-2_000_000, 1000, FLOP_UNITS)
    '-2.00 MFLOPs'
    """
    sign = "-" if n < 0 else ""
    a = abs(n)
    if a < 1000 and float(a).is_integer():
        return f"{sign}{int(a)} {units[0]}"
    i = 0
    while a >= base and i < len(units) - 1:
        a /= base
        i += 1
    text = three_digits(a)
    if float(text) >= 1000 and i < len(units) - 1:
        a /= base
        i += 1
        # Here a >= 1000/1024, so three decimals are 3 significant digits.
        text = f"{a:.3f}" if round(a, 3) < 1 else three_digits(a)
    return f"{sign}{text} {units[i]}"


def bytes_text(n) -> str:
    """A byte count in binary units, 3 significant digits (``None`` -> ``""``).

    >>> [bytes_text(v) for v in (0, 999, 1023, 25_557_032 * 4, 3 * 2**30, None)]
    ['0 B', '999 B', '0.999 KiB', '97.5 MiB', '3.00 GiB', '']
    """
    if n is None:
        return ""
    return scaled_text(n, 1024, BYTE_UNITS)


def flops_text(n) -> str:
    """A FLOP count in decimal units, 3 significant digits (``None`` -> ``""``).

    >>> [flops_text(v) for v in (999, 1000, 999_600, 12_345_678_901_234, None)]
    ['999 FLOPs', '1.00 kFLOPs', '1.00 MFLOPs', '12.3 TFLOPs', '']
    """
    if n is None:
        return ""
    return scaled_text(n, 1000, FLOP_UNITS)
