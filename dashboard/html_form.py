"""A page's own filters and search box as a plain HTML form (``method="get"``), not widgets.

Streamlit loads each widget type's scripts on a first visit (``bench_browser_parts.py``
measures each), and the Sagas page had four select boxes and two text boxes, the flow page a
form with a text box. A GET form needs no script: submitting it opens this page with the
form's values as URL parameters, in this tab, and every other parameter of the URL kept as
a hidden field, so the result is a link that can be shared or reloaded like any other.
Empty values drop out of the URL when the page writes it back (``url_state.sync_url``).
A field's name must not be a DOM property (``prefix``, ``title``, ``id``...): Streamlit's
HTML sanitizer drops such a name, and the field would not be sent.
The markup is well-formed XML as well as HTML, so tests read it back as a browser would send it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape as _escape

#: Blanks inside attribute values as character references: an id is sent as typed, and an
#: XML reader (the tests') keeps them too instead of folding them into spaces.
_BLANKS = str.maketrans({"\t": "&#9;", "\n": "&#10;", "\r": "&#13;"})


def _attr(text: str) -> str:
    """``text`` escaped for the markup, blanks kept as character references."""
    return _escape(text).translate(_BLANKS)


#: The form's look, part of the page's style (chrome._CSS): close to Streamlit's own inputs.
CSS = """
  .sg-form {display: flex; flex-wrap: wrap; gap: 0.6rem 0.9rem; align-items: flex-end;
      margin: 0.2rem 0 0.6rem 0;}
  .sg-field {display: flex; flex-direction: column; flex: 1 1 9rem; min-width: 8rem;}
  .sg-field.sg-wide {flex: 3 1 18rem;}
  .sg-field > span {color: #31333f; font-size: 0.875rem; margin-bottom: 0.25rem;}
  .sg-field select, .sg-field input {height: 2.5rem; box-sizing: border-box; width: 100%;
      border: 1px solid #e6e9ef; border-radius: 0.5rem; background: #f0f2f6; color: #31333f;
      padding: 0 0.6rem; font-size: 0.95rem; font-family: inherit;}
  .sg-field select:focus, .sg-field input:focus {outline: none; border-color: #3b5bdb;}
  .sg-form-actions {display: flex; gap: 0.8rem; align-items: center; height: 2.5rem;}
  .sg-form button {height: 2.5rem; padding: 0 1.1rem; border-radius: 0.5rem; border: none;
      background: #3b5bdb; color: white; font-size: 0.95rem; font-weight: 500;
      cursor: pointer; font-family: inherit;}
  .sg-form button:hover {background: #2f4ac0;}
  .sg-form-actions a {color: #3b5bdb !important; font-size: 0.875rem; white-space: nowrap;}
"""


#: One field of a form: its name (the URL parameter it sends) and its markup.
Field = tuple[str, str]


def _named(label: str, help: str) -> str:
    # Named by aria-label: a wrapping <label> would name it with the chosen option's text too.
    return f' aria-label="{_attr(label)}"' + (f' title="{_attr(help)}"' if help else "")


def _labelled(label: str, control: str, *, wide: bool = False) -> str:
    return (f'<label class="sg-field{" sg-wide" if wide else ""}"><span>{_attr(label)}</span>'
            f"{control}</label>")


def select(name: str, label: str, options: Mapping[str, str], value: str = "", *,
           help: str = "") -> Field:
    """A drop-down of ``options`` (value -> label), ``value`` chosen (offered even when
    ``options`` lacks it: a value from a hand-edited or older link)."""
    offered = options if value in options else {**options, value: value}
    chosen = ' selected="selected"'
    choices = "".join(f'<option value="{_attr(v)}"{chosen if v == value else ""}>'
                      f"{_attr(shown)}</option>" for v, shown in offered.items())
    return name, _labelled(label, f'<select name="{_attr(name)}"{_named(label, help)}>'
                                  f"{choices}</select>")


def text(name: str, label: str, value: str = "", *, placeholder: str = "", help: str = "",
         maxlength: int | None = None, wide: bool = False) -> Field:
    """A text box; ``wide`` takes about three times a drop-down's width."""
    limit = f' maxlength="{maxlength}"' if maxlength else ""
    return name, _labelled(label, (
        f'<input type="text" name="{_attr(name)}" value="{_attr(value)}" '
        f'placeholder="{_attr(placeholder)}"{limit}{_named(label, help)} autocomplete="off" '
        'spellcheck="false" />'), wide=wide)


def form(fields: Sequence[Field], *, keep: Mapping[str, str], submit: str, label: str,
         clear_href: str = "") -> str:
    """The form: ``fields``, a ``submit`` button, and ``keep`` (the URL's other parameters,
    name -> value) as hidden fields. ``clear_href``: a link that clears the fields."""
    names = {name for name, _ in fields}
    hidden = "".join(f'<input type="hidden" name="{_attr(name)}" value="{_attr(value)}" />'
                     for name, value in keep.items() if value and name not in names)
    clear = (f'<a href="{_attr(clear_href)}" target="_self">Clear filters</a>'
             if clear_href else "")
    return (f'<form class="sg-form" method="get" role="search" aria-label="{_attr(label)}">'
            f'{hidden}{"".join(markup for _, markup in fields)}'
            f'<div class="sg-form-actions"><button type="submit">{_attr(submit)}</button>'
            f"{clear}</div></form>")
