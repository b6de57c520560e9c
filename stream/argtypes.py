"""argparse ``type=`` validators: a bad value fails while parsing, in one line naming the flag.

argparse turns an :class:`argparse.ArgumentTypeError` raised here into
``eddy VERB: --rate must be > 0, got 0`` (with :class:`OneLineParser`): the
same shape as the checks that run after parsing. A value that is not a
number at all is quoted: ``--rate must be a finite number > 0, got 'abc'``.

>>> positive_float("2.5")
2.5
>>> positive_int("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: must be >= 1, got 0
>>> fraction("1.5")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: must be in [0, 1], got 1.5
"""

from __future__ import annotations

import argparse
import math
import os
import re

__all__ = ["OneLineParser", "positive_int", "non_negative_int", "positive_float", "non_negative_float", "fraction",
           "existing_file", "int_at_least", "torch_device", "finite_float"]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line with no usage block (exit 2), worded like the checks
    verbs make after parsing: ``argument --rate: must be > 0, got 0`` becomes ``--rate must be > 0, got 0``.
    Its subparsers are OneLineParsers too."""

    def error(self, message: str):
        flag, sep, rest = message.removeprefix("argument ").partition(": ")
        if message.startswith("argument ") and sep and rest.startswith("must "):
            message = f"{flag} {rest}"
        self.exit(2, f"{self.prog}: {message}\n")


def _int(text: str, rule: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer {rule}, got {text!r}") from None


def _float(text: str, rule: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):  # nan fails every comparison, so range checks would let it through
        raise argparse.ArgumentTypeError(f"must be a finite number{' ' if rule else ''}{rule}, got {text!r}")
    return value


def int_at_least(low: int):
    """A validator of integers ``>= low``."""
    rule = f">= {low}"

    def check(text: str) -> int:
        value = _int(text, rule)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    check.__name__ = f"int_at_least_{low}"
    return check


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    value = _float(text, "> 0")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _float(text, ">= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    value = _float(text, "in [0, 1]")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def existing_file(text: str) -> str:
    if not os.path.isfile(text):
        why = "is a directory" if os.path.isdir(text) else "no such file"
        raise argparse.ArgumentTypeError(f"must be a readable file, got {text!r} ({why})")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"must be a readable file, got {text!r} (permission denied)")
    return text


_DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?|mps")


def torch_device(text: str) -> str:
    """A torch device name: cpu, cuda, cuda:N or mps (checked here, not deep inside training)."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def finite_float(text: str) -> float:
    """Any finite number (a time, a reward): nan and inf are refused here, not deep inside a read."""
    return _float(text, "")
