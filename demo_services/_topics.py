"""Topic names of the demo services; every name gets the run's prefix (``demo.topic_prefix``)."""

from __future__ import annotations

import re

#: The demo's prefix on a broker it did not start (``--bootstrap-servers``): many real systems
#: have topics called ``payments.commands`` or ``inventory.events``. ``demo.topic_prefix``
#: replaces it; the demo never runs there without one.
EXTERNAL_PREFIX = "sagascope-demo."

ORDERS_COMMANDS = "orders.commands"
ORDERS_EVENTS = "orders.events"
CHECKOUT_EVENTS = "checkout.events"
PAYMENTS_COMMANDS = "payments.commands"
PAYMENTS_EVENTS = "payments.events"
CUSTOMERS_EVENTS = "customers.events"
INVENTORY_COMMANDS = "inventory.commands"
INVENTORY_EVENTS = "inventory.events"
WAREHOUSE_COMMANDS = "warehouse.commands"
#: Written by the legacy warehouse system: JSON only, no headers at all.
LEGACY_WMS_EVENTS = "legacy.wms.events"
SHIPPING_COMMANDS = "shipping.commands"
SHIPPING_EVENTS = "shipping.events"
NOTIFICATIONS_COMMANDS = "notifications.commands"
NOTIFICATIONS_EVENTS = "notifications.events"
TRAVEL_COMMANDS = "travel.commands"
TRAVEL_EVENTS = "travel.events"
AIRLINE_COMMANDS = "airline.commands"
AIRLINE_EVENTS = "airline.events"
HOTEL_COMMANDS = "hotel.commands"
HOTEL_EVENTS = "hotel.events"

ALL_TOPICS: tuple[str, ...] = (
    ORDERS_COMMANDS, ORDERS_EVENTS, CHECKOUT_EVENTS, PAYMENTS_COMMANDS, PAYMENTS_EVENTS,
    CUSTOMERS_EVENTS, INVENTORY_COMMANDS, INVENTORY_EVENTS, WAREHOUSE_COMMANDS,
    LEGACY_WMS_EVENTS, SHIPPING_COMMANDS, SHIPPING_EVENTS, NOTIFICATIONS_COMMANDS,
    NOTIFICATIONS_EVENTS, TRAVEL_COMMANDS, TRAVEL_EVENTS, AIRLINE_COMMANDS, AIRLINE_EVENTS,
    HOTEL_COMMANDS, HOTEL_EVENTS,
)

#: The four demo saga types (``ce_sagatype``).
ORDER = "order"
ORDER_FULFILLMENT = "order-fulfillment"
SHIPMENT = "shipment"
TRIP_BOOKING = "trip-booking"
SAGA_TYPES: tuple[str, ...] = (ORDER, ORDER_FULFILLMENT, SHIPMENT, TRIP_BOOKING)


#: The key of every record the demo writes: the saga id, ``<ord|ful|shp|trp>-<run id>-<seq>``.
DEMO_KEY = re.compile(r"^(ord|ful|shp|trp)-.+-\d{6}$")


def topic(prefix: str, name: str) -> str:
    """The full name of a demo topic in a run with this prefix."""
    return f"{prefix}{name}"


def demo_topics(prefix: str) -> list[str]:
    """Every topic a demo run with this prefix writes its sagas to."""
    return [topic(prefix, name) for name in ALL_TOPICS]
