"""What every command opens the same way: Kafka clients from ``[broker]``, the store from ``[store]``."""

from __future__ import annotations

from typing import Any

from sagascope.exceptions import ConfigError
from sagascope.settings import Settings


def kafka_client_config(settings: Settings, command: str) -> dict[str, Any]:
    """kafka-python arguments from ``[broker]``, after one bounded connection check.

    The check turns a wrong CA, a missing client certificate or a plaintext client against a
    TLS listener into one error naming the setting, where the clients would retry forever.

    Raises:
        ConfigError: no bootstrap servers, or inconsistent security settings.
        BrokerConnectionError: the broker cannot be reached as configured.
    """
    from sagascope.broker_check import check_broker
    from sagascope.connections import kafka_python_config

    if not settings.broker.bootstrap_servers:
        raise ConfigError(
            f"{command} needs --bootstrap-servers (env SAGASCOPE_BROKER_BOOTSTRAP_SERVERS)"
        )
    config = kafka_python_config(settings.broker)
    check_broker(settings.broker)
    return config
