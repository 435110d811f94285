"""The hotel: books rooms; transient failures at its error rate, a full hotel never books."""

from __future__ import annotations

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import DemoService, Message
from sagascope.demo_services.ground_truth import MAX_BOOKING_ATTEMPTS

#: Hotels with no rooms left.
FULL_HOTELS = frozenset({"HTL-FULL"})


class Hotel(DemoService):
    name = "hotel"
    topics = (t.HOTEL_COMMANDS,)
    injects_crashes = False

    def on_message(self, message: Message) -> None:
        if message.type != "BookHotel":
            return
        trip = message.data
        saga_id = message.saga_id
        attempt = int(trip.get("attempt", 1))
        if attempt < MAX_BOOKING_ATTEMPTS and self.faults.fails(saga_id, "BookHotel", attempt):
            self.send(t.HOTEL_EVENTS, "HotelBookingFailed", {**trip, "error": "channel manager down"},
                      saga_id=saga_id, step="BookHotel")
        elif str(trip.get("hotel", "")) in FULL_HOTELS:
            self.send(t.HOTEL_EVENTS, "HotelUnavailable", trip, saga_id=saga_id, step="BookHotel")
        else:
            self.send(t.HOTEL_EVENTS, "HotelBooked", trip, saga_id=saga_id, step="BookHotel")
