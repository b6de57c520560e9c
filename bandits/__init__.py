"""Exploration policies and off-policy estimators: pure numpy (and VW), no I/O.

Policies map one decision's :class:`Candidates` to a full action distribution
and sample from it with the caller's seeded generator; :mod:`bandits.ope`
estimates a target policy's value from the resulting logs.
"""

from bandits.base import Candidates, Decision, Policy, decision_seed
from bandits.epsilon_greedy import EpsilonGreedy, Greedy
from bandits.errors import BanditError
from bandits.exp3 import Exp3
from bandits.exp4 import Exp4
from bandits.factory import POLICIES, make_policy
from bandits.softmax import Softmax
from bandits.thompson import ThompsonSampling
from bandits.ucb import UCB
from bandits.vw import VWExplorePolicy

__all__ = [
    "BanditError",
    "Candidates",
    "Decision",
    "EpsilonGreedy",
    "Exp3",
    "Exp4",
    "Greedy",
    "POLICIES",
    "Policy",
    "Softmax",
    "ThompsonSampling",
    "UCB",
    "VWExplorePolicy",
    "decision_seed",
    "make_policy",
]
