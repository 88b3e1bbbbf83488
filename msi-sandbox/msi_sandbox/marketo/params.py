"""How Marketo reads request parameters: query string, `_method=GET` form bodies, list styles.

Adobe's Swagger declares `fields`, `filterValues`, `status`, `id`, `leadIds` as arrays with
`collectionFormat: multi` (repeated `fields=a&fields=b`), while Adobe's pages show comma lists
(`fields=a,b`); Marketo takes both, and both mixed. A repeated parameter is read as the comma
list of its values, as the Spring binding behind Marketo's REST API reads it, so every handler
sees one shape: `split_list` of a comma list.
"""

from __future__ import annotations

from flask import request
from werkzeug.datastructures import MultiDict

OVERRIDE = "_method"


def is_get_override() -> bool:
    """A POST that is really a GET: `_method=GET` in the query string or in the form body.

    Marketo accepts both (marketorestpython puts it in the form); it beats the 8 KB URI limit.
    """
    if request.method != "POST":
        return False
    method = request.args.get(OVERRIDE) or (request.form.get(OVERRIDE) if request.form else None)
    return (method or "").upper() == "GET"


def parameters() -> MultiDict[str, str]:
    """Every parameter as sent, repeats kept: the query string, and for a `_method=GET` POST
    its form body too (the query string's values first)."""
    merged: MultiDict[str, str] = MultiDict(request.args)
    if is_get_override():
        for name, value in request.form.items(multi=True):
            merged.add(name, value)
    merged.poplist(OVERRIDE)
    return merged


def request_params() -> dict[str, str]:
    """Each parameter once; a repeated one as the comma list of its values (`a&a` -> `a,b`)."""
    sent = parameters()
    return {name: ",".join(sent.getlist(name)) for name in sent}
