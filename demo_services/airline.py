"""The airline: books and cancels flights; bookings fail transiently at its error rate."""

from __future__ import annotations

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import DemoService, Message
from sagascope.demo_services.ground_truth import MAX_BOOKING_ATTEMPTS


class Airline(DemoService):
    name = "airline"
    topics = (t.AIRLINE_COMMANDS,)
    # A remote provider: failures are answered, not crashed on.
    injects_crashes = False

    def on_message(self, message: Message) -> None:
        trip = message.data
        saga_id = message.saga_id
        if message.type == "BookFlight":
            attempt = int(trip.get("attempt", 1))
            if attempt < MAX_BOOKING_ATTEMPTS and self.faults.fails(saga_id, "BookFlight", attempt):
                self.send(t.AIRLINE_EVENTS, "FlightBookingFailed",
                          {**trip, "error": "seat map timeout"}, saga_id=saga_id,
                          step="BookFlight")
                return
            self.send(t.AIRLINE_EVENTS, "FlightBooked", {**trip, "pnr": f"PNR{saga_id[-5:]}"},
                      saga_id=saga_id, step="BookFlight")
        elif message.type == "CancelFlight":
            self.send(t.AIRLINE_EVENTS, "FlightCancelled", trip, saga_id=saga_id,
                      step="CancelFlight")
