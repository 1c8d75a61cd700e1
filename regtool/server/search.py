"""`docker search HOST/TERM`: the V1 search API (`GET /v1/search?q=&n=&page=`) over the
registry's catalog, which distribution does not offer (it answers 404).

The answer is Docker Hub's V1 search document, the shape the docker client reads
(moby `registry.SearchResults`): `query`, `num_results`, `num_pages`, `page`,
`page_size` and `results`, each `{"name", "description", "star_count",
"is_official", "is_automated"}`. A repository matches when TERM is part of its name,
without regard to case; the list is the catalog as the user may see it (the same
access as `/v2/_catalog`: only repositories they may pull).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from regtool.server.auth.access import needed
from regtool.server.errors import PaginationInvalid, error_response
from regtool.server.http import guard, parse_number, run, state

#: Results per page when the client asks for none (the docker client asks for 25).
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


async def search(request: Request) -> Response:
    """The V1 search answer for `q` (the term), `n` (page size, 1-100) and `page`
    (from 1); 400 for an `n` or `page` that is not a positive number."""
    try:
        guard(request).check(request, needed("GET", None, "catalog", None), ["GET"])
        term = request.query_params.get("q", "").strip().lower()
        size = _positive(request, "n", DEFAULT_PAGE_SIZE)
        page = _positive(request, "page", 1)
        names = await run(state(request).registry.repositories)
        may_pull = guard(request).may_pull(request)
        found = [n for n in names if term in n.lower() and (may_pull is None or may_pull(n))]
    except Exception as e:
        return error_response(e)
    size = min(size, MAX_PAGE_SIZE)
    pages = max(1, -(-len(found) // size))
    shown = found[(page - 1) * size : page * size]
    return JSONResponse(
        {
            "query": request.query_params.get("q", ""),
            "num_results": len(found),
            "num_pages": pages,
            "page": page,
            "page_size": size,
            "results": [
                {
                    "name": name,
                    "description": "",
                    "star_count": 0,
                    "is_official": False,
                    "is_automated": False,
                }
                for name in shown
            ],
        }
    )


async def ping(request: Request) -> Response:
    """`GET /v1/_ping`, which the docker client asks before it searches: a standalone
    registry, as the V1 registry answered."""
    return JSONResponse({}, headers={"X-Docker-Registry-Standalone": "true"})


def _positive(request: Request, key: str, default: int) -> int:
    text = request.query_params.get(key)
    if text is None or text == "":
        return default
    number = parse_number(text)
    if number is None or number < 1:
        raise PaginationInvalid(f"{key} must be a positive number, not {text[:20]!r}")
    return number
