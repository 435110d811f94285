"""The words a message type says: is it a failure, an undo, a command?

Type names are split into lower-case words (``PaymentDeclined`` -> ``payment declined``,
``stock_released`` -> ``stock released``). Lists follow what public saga code names things
(see docs): failures often say no "fail" (``OutOfStock``, ``CardDeclined``, ``NoSeats``).
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

#: Substrings of a joined, lower-case type that report a failure.
FAILURE_MARKS = (
    "fail", "error", "declin", "reject", "denied", "refused", "expired", "timedout", "timeout",
    "unavailable", "outofstock", "insufficient", "invalid", "abort", "noseat", "notavailable",
    "unable", "notfound", "overdrawn",
)
#: Imperatives that ask for an undo, and the participles that report one done.
UNDO_VERBS = frozenset({
    "cancel", "refund", "release", "revert", "undo", "compensate", "void", "reimburse",
    "rollback", "unreserve", "unblock", "unlock", "restore", "return", "reverse",
})
UNDO_DONE = frozenset({
    "cancelled", "canceled", "refunded", "released", "reverted", "undone", "compensated",
    "voided", "reimbursed", "unreserved", "unblocked", "unlocked", "restored", "returned",
    "reversed",
})
#: Imperatives that start a command's name (``ReserveStock``, ``ProcessPayment``).
COMMAND_VERBS = UNDO_VERBS | frozenset({
    "create", "place", "reserve", "process", "charge", "book", "ship", "send", "notify",
    "check", "deduct", "approve", "confirm", "retrieve", "fetch", "pay", "authorize",
    "authorise", "capture", "schedule", "assign", "update", "request", "start", "submit",
    "verify", "validate", "allocate", "deliver", "complete", "debit", "credit", "hold",
    "block", "lock", "issue", "register", "open", "close", "prepare", "pick", "pack",
    "dispatch", "accept", "transfer", "withdraw", "deposit", "calculate", "apply", "grant",
    "do", "execute", "run", "handle", "make", "get", "set", "add", "remove", "delete",
})
#: Words that say nothing about what a message is about.
_GENERIC = frozenset({
    "command", "event", "reply", "request", "response", "message", "done", "completed",
    "succeeded", "success", "ok", "the", "a", "an", "of", "for", "to", "by", "v1", "v2",
})


def words(type_name: str) -> list[str]:
    """``PaymentDeclined`` -> ``["payment", "declined"]``; any separator or case splits."""
    return [w.lower() for w in _WORD.findall(type_name)]


def reports_failure(type_name: str) -> bool:
    joined = "".join(words(type_name))
    return any(mark in joined for mark in FAILURE_MARKS)


def is_undo(type_name: str) -> bool:
    return any(w in UNDO_VERBS or w in UNDO_DONE for w in words(type_name))


def starts_with_verb(type_name: str) -> bool:
    """Named like an imperative (``ReserveStock``), not like a report (``ChargeDeclined``)."""
    ws = words(type_name)
    return (bool(ws) and ws[0] in COMMAND_VERBS and not _is_participle(ws[-1])
            and not reports_failure(type_name))


def subject(type_name: str) -> set[str]:
    """What a type is about: its words without verbs and generic ones (plurals folded)."""
    out = set()
    for w in words(type_name):
        if w in UNDO_VERBS or w in UNDO_DONE or w in COMMAND_VERBS or w in _GENERIC:
            continue
        if _is_participle(w):
            continue
        out.add(w[:-1] if w.endswith("s") and len(w) > 3 else w)
    return out


def _is_participle(word: str) -> bool:
    """``reserved``, ``processed``, ``paid``: the verb of an event, not its subject."""
    return word.endswith("ed") or word in ("paid", "sent", "done", "made", "held", "undone")


#: Values of an outcome field that report a failure.
FAILURE_VALUES = frozenset({
    "false", "failed", "failure", "fail", "error", "declined", "rejected", "denied", "ko",
    "nok", "aborted", "refused", "expired", "timeout", "timedout",
})
#: Values of an outcome field that report success.
SUCCESS_VALUES = frozenset({
    "true", "success", "succeeded", "ok", "completed", "complete", "done", "approved",
    "accepted", "confirmed",
})
#: Names of fields and headers that carry an outcome.
OUTCOME_NAMES = frozenset({
    "success", "succeeded", "successful", "ok", "status", "state", "outcome", "result",
    "replyoutcometype", "outcometype", "replyoutcome",
})
