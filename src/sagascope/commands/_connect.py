"""What every command opens the same way: Kafka clients from ``[broker]``, the store from ``[store]``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sagascope.exceptions import ConfigError
from sagascope.settings import Settings, StoreSettings

if TYPE_CHECKING:
    from sagascope.store import Store, StoreOwner


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


def consumer_config(settings: Settings, command: str) -> dict[str, Any]:
    """The collector's consumer arguments from ``[broker]``, for the client it is set to use."""
    config = kafka_client_config(settings, command)
    if settings.collector.client == "confluent-kafka":
        # The same [broker] security settings, in librdkafka's property names.
        from sagascope.connections import confluent_config

        return confluent_config(settings.broker)
    return config


def open_owned_store(cfg: StoreSettings, command: str) -> tuple[Store, StoreOwner | None]:
    """The store, written by this process only; an embedded one is served to the others.

    Returns the store and, for an embedded store, its read server (None for a server URL).

    Raises:
        StoreHeld: another process owns the embedded store.
    """
    from sagascope.store import StoreHeld, StoreThroughOwner, open_store_from_settings, store_owner

    store = open_store_from_settings(cfg, serve_reads=True)
    if isinstance(store, StoreThroughOwner):
        owner = store.owner
        store.close()
        raise StoreHeld(
            f"the store at {cfg.path} is owned by {owner.describe()}, which serves reads at "
            f"{owner.url}; an embedded store has one writer. Stop that process first, or give "
            f"'sagascope {command}' another --store-path ('sagascope serve' runs the collector, "
            "alerter, saga metrics and dashboard in one process; 'sagascope alert' started "
            "after 'collect' records its alerts through it)"
        )
    return store, None if cfg.url else store_owner(cfg.path)


def quiet_kafka_clients(verbose: int) -> None:
    """Unless ``-v``: say what the collector does (store, broker, partitions and where each
    starts, progress while catching up) without the Kafka client's routine warnings."""
    if not verbose:
        logging.getLogger("sagascope.collector").setLevel(logging.INFO)
        logging.getLogger("kafka").setLevel(logging.ERROR)
