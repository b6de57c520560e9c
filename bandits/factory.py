"""Build a policy from a spec string or dict, e.g. from configuration or a CLI flag."""

from __future__ import annotations

import inspect
from typing import Any

from bandits.base import Policy
from bandits.epsilon_greedy import EpsilonGreedy, Greedy
from bandits.errors import BanditError
from bandits.softmax import Softmax
from bandits.thompson import ThompsonSampling
from bandits.ucb import UCB
from bandits.vw import VWExplorePolicy

__all__ = ["POLICIES", "make_policy", "parse_spec"]

POLICIES: dict[str, type[Policy]] = {
    "epsilon_greedy": EpsilonGreedy,
    "greedy": Greedy,
    "softmax": Softmax,
    "thompson": ThompsonSampling,
    "ucb": UCB,
    "vw": VWExplorePolicy,
}


def _parse_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text.strip()


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name:key=value,key=value"`` into a name and typed parameters.

    >>> parse_spec("ucb:alpha=1,epsilon=0.05")
    ('ucb', {'alpha': 1, 'epsilon': 0.05})
    >>> parse_spec("greedy")
    ('greedy', {})
    """
    if not isinstance(spec, str) or not spec.strip():
        raise BanditError(f"spec must be a non-empty string like 'epsilon_greedy:epsilon=0.1'; got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BanditError(f"spec parameter must look like key=value; got {item!r} in {spec!r}")
        if key in params:
            raise BanditError(f"spec parameter {key!r} given twice in {spec!r}")
        params[key] = _parse_value(value)
    return name.strip(), params


def make_policy(spec: str | dict[str, Any]) -> Policy:
    """A policy from ``"name:key=value,..."`` or ``{"name": ..., key: value, ...}``.

    Names: ``epsilon_greedy``, ``greedy``, ``softmax``, ``thompson``, ``ucb``, ``vw``.

    >>> make_policy("epsilon_greedy:epsilon=0.1").version
    'epsilon_greedy/1?epsilon=0.1'
    >>> make_policy({"name": "softmax", "temperature": 0.5})
    Softmax(temperature=0.5)
    >>> make_policy("softmax:temp=0.5")
    Traceback (most recent call last):
    ...
    bandits.errors.BanditError: unknown parameter 'temp' for policy 'softmax'; expected one of ['temperature']
    """
    if isinstance(spec, dict):
        params = dict(spec)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise BanditError(f"spec dict needs a string 'name'; got {name!r}")
    else:
        name, params = parse_spec(spec)
    cls = POLICIES.get(name)
    if cls is None:
        raise BanditError(f"unknown policy name {name!r}; expected one of {sorted(POLICIES)}")
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in params:
        if key not in allowed:
            raise BanditError(f"unknown parameter {key!r} for policy {name!r}; expected one of {allowed}")
    return cls(**params)
