"""The ``trip-booking`` saga type: flight + hotel, orchestrated by the travel agency.

Payment, flight, hotel, notification. A booking that fails transiently is retried (up to
``MAX_BOOKING_ATTEMPTS``); a hotel that cannot be booked cancels the flight and reimburses
the payment (compensations, in reverse order).
"""

from __future__ import annotations

from sagascope.demo_services import _topics as t
from sagascope.demo_services._runtime import DemoService, Message
from sagascope.demo_services.ground_truth import MAX_BOOKING_ATTEMPTS


class TravelAgency(DemoService):
    name = "travel-agency"
    topics = (t.TRAVEL_COMMANDS, t.PAYMENTS_EVENTS, t.AIRLINE_EVENTS, t.HOTEL_EVENTS)
    saga_types = frozenset({t.TRIP_BOOKING})

    def on_message(self, message: Message) -> None:
        trip = message.data
        saga_id = message.saga_id
        kind = message.type
        if kind == "BookTrip":
            self.command(t.PAYMENTS_COMMANDS, "ChargePayment", trip, saga_id=saga_id)
        elif kind == "PaymentCharged":
            self._book(t.AIRLINE_COMMANDS, "BookFlight", trip, saga_id, 1)
        elif kind == "FlightBookingFailed":
            self._book(t.AIRLINE_COMMANDS, "BookFlight", trip, saga_id, _next(trip))
        elif kind == "FlightBooked":
            self._book(t.HOTEL_COMMANDS, "BookHotel", trip, saga_id, 1)
        elif kind == "HotelBookingFailed":
            self._book(t.HOTEL_COMMANDS, "BookHotel", trip, saga_id, _next(trip))
        elif kind == "HotelBooked":
            self.notify_customer(saga_id, trip.get("customer_id"), "trip booked", "completed")
        elif kind == "HotelUnavailable":
            self.compensate(t.AIRLINE_COMMANDS, "CancelFlight", trip, saga_id=saga_id,
                            compensates="BookFlight")
        elif kind == "FlightCancelled":
            self.command(t.PAYMENTS_COMMANDS, "ReimbursePayment", trip, saga_id=saga_id,
                         compensates="ChargePayment")
        elif kind == "PaymentReimbursed":
            self.send(t.TRAVEL_EVENTS, "TripCancelled", trip, saga_id=saga_id,
                      step="CancelTrip", saga_status="compensated")

    def _book(self, topic_name: str, command: str, trip: dict[str, object], saga_id: str,
              attempt: int) -> None:
        self.command(topic_name, command,
                     {**trip, "attempt": min(attempt, MAX_BOOKING_ATTEMPTS)}, saga_id=saga_id)


def _next(trip: dict[str, object]) -> int:
    attempt = trip.get("attempt", 1)
    return (attempt if isinstance(attempt, int) else 1) + 1
