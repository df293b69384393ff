"""Pages and their small JSON endpoints. Each view reads through a selector or calls one service.

Anything a visitor may not see answers 404 (not 403), so private galleries and photos do not reveal that
they exist. Photo files are streamed from here after the same check; there is no public media URL.

One module per page family; urls.py names them."""
