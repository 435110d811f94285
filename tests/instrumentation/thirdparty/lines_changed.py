"""Lines each service of the third-party system changed to be instrumented.

    python tests/instrumentation/thirdparty/lines_changed.py

Counts the ``+`` and ``-`` lines of a unified diff of ``plain/`` (as its authors wrote it)
against ``instrumented/`` (the new forms: keyword ``service``, the type from the value,
``for record in handled(records)``, ``saga_outcome`` without a send) and ``instrumented_old/``
(what the earlier API asked for: ``type=`` on every send, the loop body moved into a decorated
function, a business message to carry each outcome). A re-indented line counts as changed.
"""

from __future__ import annotations

import difflib
from pathlib import Path

HERE = Path(__file__).parent
SERVICES = ("order_orchestrator", "payment", "inventory", "shipping")


def changed_lines(before: str, after: str) -> int:
    """The ``+`` and ``-`` lines of the unified diff from ``before`` to ``after``."""
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return sum(1 for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---")))


def counts(form: str) -> dict[str, int]:
    """Changed lines per service of ``form`` against the plain system."""
    return {
        service: changed_lines((HERE / "plain" / f"{service}.py").read_text(),
                               (HERE / form / f"{service}.py").read_text())
        for service in SERVICES
    }


def main() -> None:
    print(f"{'service':20} {'new forms':>10} {'old forms':>10} {'new / old':>10}")
    new, old = counts("instrumented"), counts("instrumented_old")
    for service in SERVICES:
        print(f"{service:20} {new[service]:>10} {old[service]:>10} "
              f"{new[service] / old[service]:>10.2f}")
    total_new, total_old = sum(new.values()), sum(old.values())
    print(f"{'total':20} {total_new:>10} {total_old:>10} {total_new / total_old:>10.2f}")


if __name__ == "__main__":
    main()
