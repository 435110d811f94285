"""Lines each service of the third-party system changed to be instrumented.

    python tests/instrumentation/thirdparty/lines_changed.py

Counts the ``+`` and ``-`` lines of a unified diff of ``plain/`` (as its authors wrote it)
against ``instrumented/`` (the new forms: keyword ``service``, the type from the value,
``with handling(record)``, ``saga_outcome`` without a send) and ``instrumented_old/`` (what
the earlier API asked for: ``type=`` on every send, the loop body moved into a decorated
function, a business message to carry each outcome). Also counted with indentation ignored,
as a review tool's "hide whitespace" shows the change.
"""

from __future__ import annotations

import difflib
from pathlib import Path

HERE = Path(__file__).parent
SERVICES = ("order_orchestrator", "payment", "inventory", "shipping")
FORMS = ("instrumented", "instrumented_old")


def changed_lines(before: str, after: str, *, ignore_indentation: bool = False) -> int:
    """The ``+`` and ``-`` lines of the unified diff from ``before`` to ``after``."""
    old, new = before.splitlines(), after.splitlines()
    if ignore_indentation:
        old, new = [line.strip() for line in old], [line.strip() for line in new]
    diff = difflib.unified_diff(old, new, lineterm="", n=0)
    return sum(1 for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---")))


def counts(form: str, *, ignore_indentation: bool = False) -> dict[str, int]:
    """Changed lines per service of ``form`` against the plain system."""
    return {
        service: changed_lines((HERE / "plain" / f"{service}.py").read_text(),
                               (HERE / form / f"{service}.py").read_text(),
                               ignore_indentation=ignore_indentation)
        for service in SERVICES
    }


def main() -> None:
    print(f"{'service':20} {'new forms':>10} {'old forms':>10}   (indentation ignored: new, old)")
    new, old = counts("instrumented"), counts("instrumented_old")
    new_w, old_w = (counts(form, ignore_indentation=True) for form in FORMS)
    for service in SERVICES:
        print(f"{service:20} {new[service]:>10} {old[service]:>10}   "
              f"({new_w[service]}, {old_w[service]})")
    print(f"{'total':20} {sum(new.values()):>10} {sum(old.values()):>10}   "
          f"({sum(new_w.values())}, {sum(old_w.values())})")


if __name__ == "__main__":
    main()
