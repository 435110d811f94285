"""``discover --write``: rules are added to the config file, the rest of it kept; rules for
the same topics are replaced only with ``--force``, and only those."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagascope.collector.discover import write_rules
from sagascope.collector.discover.proposal import Proposal, TopicFinding
from sagascope.collector.exceptions import DiscoverError
from sagascope.settings import CorrelationRule, TypeMeaning, load_settings

EXISTING = """# our warehouse rule
[[collector.correlation]]
topic = 'legacy\\.wms'
saga_id = "/orderRef"

[[collector.correlation]]
topic = 'shop\\.orders'
saga_id = "/id"

[[collector.correlation.types]]
type = "OrderPaid"
status = "completed"

[alerts]
interval_s = 3.0
"""


def proposal() -> Proposal:
    rule = CorrelationRule(topic="shop\\.orders", saga_id="/orderId", key_fallback=False,
                           types=(TypeMeaning("OrderApproved", status="completed"),))
    return Proposal([rule], [TopicFinding("shop.orders", 10, 10, "/orderId")], [])


def test_rules_for_a_configured_topic_are_refused_without_force(tmp_path: Path):
    config = tmp_path / "sagascope.toml"
    config.write_text(EXISTING)
    with pytest.raises(DiscoverError, match=r"already has rules for shop.orders .*\[1\].*--force"):
        write_rules(config, proposal())
    assert config.read_text() == EXISTING


def test_force_replaces_only_the_rules_for_the_same_topics(tmp_path: Path):
    config = tmp_path / "sagascope.toml"
    config.write_text(EXISTING)
    assert write_rules(config, proposal(), force=True) == ["shop.orders"]
    settings = load_settings(config, environ={})
    assert [(r.topic, r.saga_id) for r in settings.collector.correlation] == [
        ("legacy\\.wms", "/orderRef"), ("shop\\.orders", "/orderId")]
    assert settings.collector.correlation[1].types == (TypeMeaning("OrderApproved", status="completed"),)
    assert settings.alerts.interval_s == 3.0
    assert config.read_text().startswith("# our warehouse rule\n")


def test_a_missing_config_file_is_created(tmp_path: Path):
    config = tmp_path / "sagascope.toml"
    write_rules(config, proposal())
    assert load_settings(config, environ={}).collector.correlation == tuple(proposal().rules)
