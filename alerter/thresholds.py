"""Thresholds per (saga type, step): fixed ones, or learned from history.

A threshold rule (``[[alerts.rules]]`` in ``sagascope.toml``) matches a saga type and the step
a saga is stalled after (``*`` matches any); the first matching rule wins. A learning rule sets
the threshold to a high percentile of that step's historical waiting time (from the step to
whatever came next) times a factor, never below a floor; with fewer samples than its minimum
it falls back to the rule's own ``threshold_s``, else to ``alerts.default_threshold_s``.
The resolved thresholds reach the query layer as ``StallRule``s.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sagascope.exceptions import ConfigError
from sagascope.queries import StallRule
from sagascope.settings import AlertSettings, ThresholdRule

ANY = "*"

SOURCE_RULE = "rule"
SOURCE_LEARNED = "learned"
SOURCE_DEFAULT = "default"


@dataclass(frozen=True)
class Threshold:
    """How long a saga may stay silent after ``step`` before it counts as stalled."""

    saga_type: str
    step: str
    threshold_s: float
    #: ``rule``, ``learned`` or ``default``
    source: str
    #: Samples the learned value rests on (0 unless learned or below the minimum).
    samples: int = 0


@dataclass(frozen=True)
class StepDurations:
    """Observed waiting times after one step: sample count and percentiles (0-100 -> seconds)."""

    saga_type: str
    step: str
    samples: int
    percentiles: Mapping[float, float] = field(default_factory=dict)

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile, interpolated linearly between the known ones."""
        if not self.percentiles:
            return None
        known = sorted(self.percentiles.items())
        if p <= known[0][0]:
            return known[0][1]
        for (p0, v0), (p1, v1) in itertools.pairwise(known):
            if p0 <= p <= p1:
                return v0 if p1 == p0 else v0 + (v1 - v0) * (p - p0) / (p1 - p0)
        return known[-1][1]


def mixture_percentile(components: Sequence[tuple[int, Mapping[float, float]]], p: float) -> float:
    """The ``p``-th percentile of several samples known only by count and a few percentiles.

    Each component's distribution is taken as linear between its known percentiles (100 is
    its maximum); the mixture's CDF is their count-weighted sum, inverted by bisection.
    """
    parts = [(n, sorted(points.items())) for n, points in components if n > 0 and points]
    if not parts:
        raise ValueError("percentile of no samples")
    total = sum(n for n, _ in parts)

    def cdf(x: float) -> float:
        acc = 0.0
        for n, points in parts:
            if x < points[0][1]:
                frac = points[0][0] / 100.0 * (x / points[0][1] if points[0][1] > 0 else 0.0)
            elif x >= points[-1][1]:
                frac = points[-1][0] / 100.0
            else:
                frac = points[-1][0] / 100.0
                for (p0, v0), (p1, v1) in itertools.pairwise(points):
                    if v0 <= x < v1:
                        frac = (p0 + (p1 - p0) * (x - v0) / (v1 - v0)) / 100.0
                        break
            acc += n * frac
        return acc / total

    low, high = 0.0, max(points[-1][1] for _, points in parts)
    target = p / 100.0
    for _ in range(60):
        mid = (low + high) / 2
        if cdf(mid) < target:
            low = mid
        else:
            high = mid
    return high


def percentile_of(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, linear between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def validate(settings: AlertSettings) -> None:
    """Fail at start-up on thresholds that cannot work, naming the setting.

    Raises:
        ConfigError: for a non-positive interval or default, or a rule with bad values.
    """
    if settings.interval_s <= 0:
        raise ConfigError(f"setting alerts.interval_s must be > 0, got {settings.interval_s}")
    if settings.default_threshold_s <= 0:
        raise ConfigError(
            f"setting alerts.default_threshold_s must be > 0, got {settings.default_threshold_s}"
        )
    if settings.learn_refresh_s <= 0:
        raise ConfigError(
            f"setting alerts.learn_refresh_s must be > 0, got {settings.learn_refresh_s}"
        )
    if settings.learn_window_s <= 0:
        raise ConfigError(
            f"setting alerts.learn_window_s must be > 0, got {settings.learn_window_s}"
        )
    for i, rule in enumerate(settings.rules):
        where = f"alerts.rules[{i}]"
        if not rule.saga_type or not rule.step:
            raise ConfigError(f"setting {where}: saga_type and step must be a name or '*'")
        if rule.threshold_s < 0:
            raise ConfigError(f"setting {where}.threshold_s must be >= 0, got {rule.threshold_s}")
        if rule.learn_percentile:
            if not 0 < rule.learn_percentile < 100:
                raise ConfigError(
                    f"setting {where}.learn_percentile must be a percentile between 0 and 100 "
                    f"(e.g. 95), got {rule.learn_percentile}"
                )
            if rule.learn_factor <= 0:
                raise ConfigError(
                    f"setting {where}.learn_factor must be > 0, got {rule.learn_factor}"
                )
            if rule.learn_floor_s < 0:
                raise ConfigError(
                    f"setting {where}.learn_floor_s must be >= 0, got {rule.learn_floor_s}"
                )
            if rule.learn_min_samples < 1:
                raise ConfigError(
                    f"setting {where}.learn_min_samples must be >= 1, got {rule.learn_min_samples}"
                )
        elif rule.threshold_s == 0:
            raise ConfigError(
                f"setting {where} sets neither threshold_s nor learn_percentile"
            )


def _matches(rule: ThresholdRule, saga_type: str, step: str) -> bool:
    return rule.saga_type in (ANY, saga_type) and rule.step in (ANY, step)


class Thresholds:
    """The rules of one ``AlertSettings``, plus what was learned for each observed step."""

    def __init__(self, settings: AlertSettings) -> None:
        validate(settings)
        self.rules: tuple[ThresholdRule, ...] = settings.rules
        self.default_threshold_s = settings.default_threshold_s
        self._learned: dict[tuple[str, str], Threshold] = {}

    @property
    def learns(self) -> bool:
        """Whether any rule learns (so transitions need to be read)."""
        return any(rule.learn_percentile for rule in self.rules)

    def learn(self, durations: Iterable[StepDurations]) -> dict[tuple[str, str], Threshold]:
        """Recompute the learned thresholds from observed step durations; returns them."""
        learned: dict[tuple[str, str], Threshold] = {}
        for obs in durations:
            rule = self._rule_for(obs.saga_type, obs.step)
            if rule is None or not rule.learn_percentile:
                continue
            value = obs.percentile(rule.learn_percentile)
            if obs.samples < rule.learn_min_samples or value is None:
                learned[(obs.saga_type, obs.step)] = self._fallback(
                    rule, obs.saga_type, obs.step, obs.samples
                )
                continue
            learned[(obs.saga_type, obs.step)] = Threshold(
                obs.saga_type,
                obs.step,
                max(rule.learn_floor_s, value * rule.learn_factor),
                SOURCE_LEARNED,
                obs.samples,
            )
        self._learned = learned
        return dict(learned)

    def _rule_for(self, saga_type: str, step: str) -> ThresholdRule | None:
        return next((r for r in self.rules if _matches(r, saga_type, step)), None)

    def _fallback(self, rule: ThresholdRule, saga_type: str, step: str, samples: int) -> Threshold:
        if rule.threshold_s > 0:
            return Threshold(saga_type, step, rule.threshold_s, SOURCE_RULE, samples)
        return Threshold(saga_type, step, self.default_threshold_s, SOURCE_DEFAULT, samples)

    def for_step(self, saga_type: str, step: str) -> Threshold:
        """The threshold of a saga of ``saga_type`` stalled after ``step``."""
        learned = self._learned.get((saga_type, step))
        if learned is not None:
            return learned
        rule = self._rule_for(saga_type, step)
        if rule is None:
            return Threshold(saga_type, step, self.default_threshold_s, SOURCE_DEFAULT)
        return self._fallback(rule, saga_type, step, 0)

    def stall_rules(self) -> list[StallRule]:
        """The thresholds as ``StallRule``s for SagaQueries (first match wins).

        Learned (and exactly resolved) steps come first; they already follow the first rule
        that matches them, so the order of the configured rules is kept.
        """
        out = [StallRule(t.saga_type, t.step, t.threshold_s) for t in self._learned.values()]
        for rule in self.rules:
            fallback = self._fallback(rule, rule.saga_type, rule.step, 0)
            out.append(StallRule(rule.saga_type, rule.step, fallback.threshold_s))
        return out
