"""Thresholds: explicit rules, learned percentiles with floor and minimum samples, defaults."""

from __future__ import annotations

import pytest

from sagascope.alerter.thresholds import (
    StepDurations,
    Thresholds,
    mixture_percentile,
    percentile_of,
)
from sagascope.exceptions import ConfigError
from sagascope.queries import StallRule
from sagascope.settings import AlertSettings, ThresholdRule


def test_first_matching_rule_wins_and_default_covers_the_rest():
    t = Thresholds(
        AlertSettings(
            default_threshold_s=300,
            rules=(
                ThresholdRule(saga_type="order", step="RetrievePayment", threshold_s=60),
                ThresholdRule(saga_type="order", step="*", threshold_s=30),
                ThresholdRule(saga_type="*", step="Ship", threshold_s=10),
            ),
        )
    )
    explicit = t.for_step("order", "RetrievePayment")
    assert (explicit.threshold_s, explicit.source) == (60, "rule")
    assert t.for_step("order", "Ship").threshold_s == 30
    assert t.for_step("booking", "Ship").threshold_s == 10
    default = t.for_step("booking", "Reserve")
    assert (default.threshold_s, default.source) == (300, "default")
    assert t.stall_rules() == [
        StallRule("order", "RetrievePayment", 60),
        StallRule("order", "*", 30),
        StallRule("*", "Ship", 10),
    ]


def test_learned_threshold_is_percentile_times_factor():
    t = Thresholds(
        AlertSettings(
            rules=(
                ThresholdRule(learn_percentile=95, learn_factor=2, learn_floor_s=0.1, learn_min_samples=5),
            )
        )
    )
    t.learn([StepDurations("order", "Pay", 100, {95: 1.5})])
    learned = t.for_step("order", "Pay")
    assert (learned.threshold_s, learned.source, learned.samples) == (3.0, "learned", 100)
    assert t.stall_rules()[0] == StallRule("order", "Pay", 3.0)


def test_learned_threshold_never_below_floor():
    rule = ThresholdRule(learn_percentile=99, learn_factor=2, learn_floor_s=5)
    t = Thresholds(AlertSettings(rules=(rule,)))
    t.learn([StepDurations("order", "Pay", 1000, {99: 0.2})])
    assert t.for_step("order", "Pay").threshold_s == 5


def test_too_few_samples_fall_back_to_rule_timeout_then_default():
    settings = AlertSettings(
        default_threshold_s=120,
        rules=(
            ThresholdRule(saga_type="order", learn_percentile=95, learn_min_samples=20, threshold_s=45),
            ThresholdRule(saga_type="*", learn_percentile=95, learn_min_samples=20),
        ),
    )
    t = Thresholds(settings)
    t.learn([StepDurations("order", "Pay", 19, {95: 1.0}), StepDurations("booking", "Hold", 3, {95: 1.0})])
    assert (t.for_step("order", "Pay").threshold_s, t.for_step("order", "Pay").source) == (45, "rule")
    default = t.for_step("booking", "Hold")
    assert (default.threshold_s, default.source) == (120, "default")


def test_earlier_explicit_rule_is_not_overridden_by_a_later_learning_rule():
    t = Thresholds(
        AlertSettings(
            rules=(
                ThresholdRule(saga_type="order", step="Pay", threshold_s=7),
                ThresholdRule(learn_percentile=90, learn_min_samples=1),
            )
        )
    )
    t.learn([StepDurations("order", "Pay", 50, {90: 100.0}), StepDurations("order", "Ship", 50, {90: 1.0})])
    assert t.for_step("order", "Pay").threshold_s == 7
    assert t.for_step("order", "Ship").threshold_s == 2.0


def test_percentiles_interpolate_between_known_points():
    d = StepDurations("s", "x", 10, {50: 1.0, 90: 3.0, 99: 6.0})
    assert d.percentile(70) == pytest.approx(2.0)
    assert d.percentile(99.9) == 6.0
    assert d.percentile(10) == 1.0
    assert percentile_of([1, 2, 3, 4, 5], 50) == 3
    assert percentile_of(list(range(101)), 95) == pytest.approx(95)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (AlertSettings(interval_s=0), "alerts.interval_s"),
        (AlertSettings(default_threshold_s=-1), "alerts.default_threshold_s"),
        (AlertSettings(rules=(ThresholdRule(saga_type="x"),)), r"alerts.rules\[0\] sets neither"),
        (
            AlertSettings(rules=(ThresholdRule(threshold_s=1), ThresholdRule(learn_percentile=100))),
            r"alerts.rules\[1\].learn_percentile",
        ),
        (AlertSettings(rules=(ThresholdRule(learn_percentile=95, learn_factor=0),)), r"learn_factor"),
        (
            AlertSettings(rules=(ThresholdRule(learn_percentile=95, learn_min_samples=0),)),
            r"learn_min_samples",
        ),
        (
            AlertSettings(rules=(ThresholdRule(step="", threshold_s=1),)),
            r"alerts.rules\[0\]: saga_type and step",
        ),
    ],
)
def test_bad_rules_fail_at_start_naming_the_setting(settings, message):
    with pytest.raises(ConfigError, match=message):
        Thresholds(settings)


def test_mixture_percentile_of_two_branches():
    # 90 samples uniform on [0, 1] and 10 uniform on [10, 11]: the 95th percentile is at 10.5.
    fast = (90, {50: 0.5, 90: 0.9, 95: 0.95, 99: 0.99, 100: 1.0})
    slow = (10, {50: 10.5, 90: 10.9, 95: 10.95, 99: 10.99, 100: 11.0})
    assert mixture_percentile([fast, slow], 95) == pytest.approx(10.5, rel=0.05)
    assert mixture_percentile([fast], 95) == pytest.approx(0.95, rel=0.01)
