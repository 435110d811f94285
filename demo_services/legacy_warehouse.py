"""The legacy warehouse system (WMS): reads FetchGoods, answers with bare JSON, no headers.

It knows nothing of tracing; its only link to the saga is ``orderRef`` in the payload, which
the correlation rule in ``sagascope.toml`` turns back into the saga id.
"""

from __future__ import annotations

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import DemoService, Message
from sagascope.demo_services.inventory import in_stock
from sagascope.instrumentation import contract


class LegacyWarehouse(DemoService):
    name = "legacy-wms"
    topics = (t.WAREHOUSE_COMMANDS,)
    instrumented = False

    def on_message(self, message: Message) -> None:
        if message.type != "FetchGoods":
            return
        order = message.data
        picked = in_stock(str(order.get("sku", "")), int(order.get("quantity", 1)))
        self.send_raw(t.LEGACY_WMS_EVENTS, {
            "system": self.name,
            "event": "GoodsPicked" if picked else "GoodsOutOfStock",
            "orderRef": str(order.get("order_id", message.saga_id)),
            "timestamp": contract.format_time(self.faults.now()),
            "order": order,
        }, key=str(order.get("order_id", message.saga_id)))
