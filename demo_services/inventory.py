"""Inventory: checks, deducts and reserves stock (``order``, ``shipment``). Its clock runs behind.

Written with aiokafka: its handler is a coroutine that awaits its sends.
"""

from __future__ import annotations

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import AIOKAFKA, DemoService, Message

#: SKUs the catalogue has run out of; everything else is plentiful.
OUT_OF_STOCK_SKUS = frozenset({"SKU-0000"})


def in_stock(sku: str, quantity: int) -> bool:
    """Whether the warehouse can serve ``quantity`` of ``sku``."""
    return sku not in OUT_OF_STOCK_SKUS and quantity <= 100


class Inventory(DemoService):
    name = "inventory"
    client = AIOKAFKA
    topics = (t.INVENTORY_COMMANDS,)

    def on_message(self, message: Message) -> None:
        order = message.data
        saga_id = message.saga_id
        available = in_stock(str(order.get("sku", "")), int(order.get("quantity", 1)))
        if message.type == "CheckStock":
            self.send(t.INVENTORY_EVENTS, "StockAvailable" if available else "StockUnavailable",
                      order, saga_id=saga_id, step="CheckStock")
        elif message.type == "DeductStock":
            self.send(t.INVENTORY_EVENTS, "StockDeducted", order, saga_id=saga_id,
                      step="DeductStock")
        elif message.type == "ReserveInventory":
            self.send(t.INVENTORY_EVENTS,
                      "InventoryReserved" if available else "InventoryShort",
                      order, saga_id=saga_id, step="ReserveInventory")
