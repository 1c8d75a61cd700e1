"""The web UI: Starlette routes rendering Jinja2 templates (autoescaped) over `StoreView`.

    GET  /ui/                       catalog (`q` filter, `page`)
    GET  /ui/repository?name=N      tags (`sort` name|pushed|size, `order` asc|desc)
    GET  /ui/image?name=N&ref=R     a manifest (digest or tag) or V1 image
    GET  /ui/storage                per-repository totals and what gc would free (the last
                                    summary; the first visit starts reading one)
    POST /ui/storage                read the summary again; GET /ui/storage/status: progress
    POST /ui/verify                 start verifying a repository (`name`) or the whole
                                    store (`all`); GET shows its progress
    GET|POST /ui/login, POST /ui/logout
    POST /ui/delete                 confirm, then delete a tag or manifest (CSRF token)
    GET  /ui/static/...             the UI's own CSS and JavaScript

Names nest (`team/app`), so they travel as query parameters, never as path segments.
Every answer carries a strict Content-Security-Policy: scripts and styles only from
`/ui/static/`, nothing inline, no frames, forms posting only here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from anyio import to_thread
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from regtool.errors import NameInvalid, NotFound, RegtoolError, is_fault
from regtool.oci import Digest, check_name, check_tag
from regtool.server.auth.guard import BasicAuth, Guard
from regtool.server.errors import ManifestUnknown
from regtool.text import human_size
from regtool.ui import format as fmt
from regtool.ui.data import StoreView
from regtool.ui.jobs import Busy, Jobs
from regtool.ui.session import COOKIE, Credential, Session, SessionSigner, no_users, same_token
from regtool.ui.viewer import Viewer, viewer_of

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: Largest form body read (a login, a delete).
MAX_FORM = 16 << 10
#: A larger form is still read to its end (and dropped) up to this many bytes, so that
#: the client hears the 413: a server that stops reading and closes the connection
#: resets it under the client's feet, answer unread.
MAX_DRAINED = 16 << 20
SORTS = ("name", "pushed", "size")
#: Tags per repository page (a row is about 300 bytes).
TAGS_PAGE_SIZE = 250


@dataclass
class UiState:
    view: StoreView
    guard: Guard
    signer: SessionSigner
    env: Environment
    writable: bool  # deletes possible at all (the registry's UI, not `regtool ui`)
    prefix: str  # where the UI is mounted: "/ui"; answers' Location paths start with it
    jobs: Jobs
    public: str = ""  # what the page's links start with: http.prefix, then `prefix`


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(size=human_size, when=fmt.when, short=fmt.short, json=fmt.json_text)
    return env


def ui_app(
    view: StoreView,
    guard: Guard,
    writable: bool = True,
    prefix: str = "/ui",
    http_prefix: str = "",
) -> Starlette:
    """The UI over `view`, for mounting at `prefix`; `guard` decides who sees what
    (the registry's own when it serves beside the API). `http_prefix`: the path the
    server answers under (`http.prefix`), which links start with (the server puts it
    in front of `Location` paths itself)."""
    state = UiState(
        view,
        guard,
        SessionSigner(credential=_credentials(guard)),
        templates(),
        writable,
        prefix,
        Jobs(view),
        public=http_prefix + prefix,
    )
    routes: list[BaseRoute] = [
        Route("/", _page(catalog)),
        Route("/repository", _page(repository)),
        Route("/image", _page(image)),
        Route("/storage", _page(storage), methods=["GET", "POST"]),
        Route("/storage/status", _page(storage_status)),
        Route("/verify", _page(verify), methods=["GET", "POST"]),
        Route("/verify/status", _page(verify_status)),
        Route("/login", _page(login), methods=["GET", "POST"]),
        Route("/logout", _page(logout), methods=["POST"]),
        Route("/delete", _page(delete), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.ui = state
    return app


def _credentials(guard: Guard) -> Credential:
    """A user's htpasswd hash as the file holds it now: what a UI session is bound to."""
    backend = guard.backend
    if not isinstance(backend, BasicAuth):
        return no_users
    htpasswd = backend.htpasswd
    return lambda user: htpasswd.entries().get(user)


class SecurityHeaders:
    """`SECURITY_HEADERS` on every answer of the UI, static files and errors included."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def ui_routes(
    view: StoreView, guard: Guard, writable: bool = True, http_prefix: str = ""
) -> list[BaseRoute]:
    """The routes a server adds for its UI: `/ui/` and a redirect from `/` to it;
    `http_prefix` as `ui_app`'s."""

    async def to_ui(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=302)

    ui = ui_app(view, guard, writable, http_prefix=http_prefix)
    return [Route("/", to_ui), Mount("/ui", ui)]


# --- plumbing ----------------------------------------------------------------------------
@dataclass
class Page:
    """One request as the handlers see it."""

    request: Request
    state: UiState
    session: Session
    viewer: Viewer
    form: dict[str, str]

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        state = self.state
        html = state.env.get_template(template).render(
            ui=state.public,
            viewer=self.viewer,
            csrf=self.session.csrf,
            location=state.view.location,
            layout=state.view.layout.kind,
            now=datetime.now(UTC),
            url=_url(state.public),
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def param(self, key: str, default: str = "") -> str:
        return self.form.get(key) or self.request.query_params.get(key) or default


Handler = Callable[[Page], Awaitable[Response]]


def _url(prefix: str) -> Callable[..., str]:
    def url(path: str, **query: Any) -> str:
        given = {k: v for k, v in query.items() if v not in (None, "")}
        return f"{prefix}{path}" + (f"?{urlencode(given)}" if given else "")

    return url


def _page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """`handler` with the session, the viewer, the form, errors as pages and the
    security headers on every answer."""

    async def endpoint(request: Request) -> Response:
        state: UiState = request.app.state.ui
        loaded = state.signer.load(request.cookies.get(COOKIE))
        session = loaded or state.signer.new()
        viewer = viewer_of(request, state.guard, session.user, state.writable)
        page = Page(request, state, session, viewer, {})
        try:
            if request.method == "POST":
                page.form = await _form(request)
            response = await handler(page)
        except Forbidden as e:
            response = page.render("error.html", 403, title="Refused", message=str(e))
        except (NotFound, NameInvalid, ManifestUnknown) as e:
            response = page.render("error.html", 404, title="Not found", message=str(e))
        except FormTooLarge as e:
            response = page.render("error.html", 413, title="Too large", message=str(e))
        except Busy as e:
            response = page.render("error.html", 503, title="Busy", message=str(e))
            response.headers["Retry-After"] = "10"
        except RegtoolError as e:
            status = 503 if is_fault(e) else 400
            log.error("%s %s: %s", request.method, request.url.path, e)
            response = page.render(
                "error.html", status, title="Cannot read storage", message=str(e)
            )
        if loaded is None and COOKIE not in response.headers.get("set-cookie", ""):
            set_session(response, state, session, request)
        return response

    return endpoint


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (what the UI's forms post), first value per key;
    `FormTooLarge` past `MAX_FORM` bytes."""
    body = bytearray()
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen <= MAX_FORM:
            body += chunk
        elif seen > MAX_DRAINED:
            break
    if seen > MAX_FORM:
        raise FormTooLarge(f"a form of more than {MAX_FORM // 1024} KiB is not taken")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def set_session(response: Response, state: UiState, session: Session, request: Request) -> None:
    response.set_cookie(
        COOKIE,
        state.signer.dump(session),
        path=state.public,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _visible(page: Page, name: str) -> None:
    """`NotFound` unless the viewer may pull `name`: a repository they may not see is
    not there for them (its existence is data too)."""
    if not page.viewer.may_pull(name):
        raise NotFound(f"repository {name} not found")


async def _name(page: Page) -> str:
    """The repository a request names: a valid V2 name, or (V1, whose names no grammar
    bounds) one the store holds."""
    name = page.param("name")
    view = page.state.view
    if view.v1 and name not in await run(view.repositories):
        raise NotFound(f"repository {name[:200]} not found")
    return name if view.v1 else check_name(name)


async def run(fn: Callable[..., Any], *args: Any) -> Any:
    return await to_thread.run_sync(fn, *args)


# --- pages -------------------------------------------------------------------------------
async def catalog(page: Page) -> Response:
    query = page.param("q")
    number = page.param("page", "1")
    found = await run(
        page.state.view.catalog,
        page.viewer.may_pull,
        query,
        int(number) if number.isdigit() and len(number) < 9 else 1,
    )
    return page.render("catalog.html", title="Repositories", found=found, query=query)


async def repository(page: Page) -> Response:
    name = await _name(page)
    _visible(page, name)
    info, warnings = await run(page.state.view.repository, name)
    sort = page.param("sort", "name")
    sort = sort if sort in SORTS else "name"
    descending = page.param("order", "desc" if sort != "name" else "asc") == "desc"
    tags = sorted(info.tags, key=fmt.tag_sort_key(sort), reverse=descending)
    pages = max(1, -(-len(tags) // TAGS_PAGE_SIZE))
    number = page.param("page", "1")
    at = min(max(int(number) if number.isdigit() and len(number) < 9 else 1, 1), pages)
    sharing: dict[str | None, list[str]] = {}
    for tag in info.tags:
        sharing.setdefault(tag.digest or tag.image_id, []).append(tag.tag)
    host = page.request.url.netloc if page.state.writable else None
    return page.render(
        "repository.html",
        title=name,
        name=name,
        tags=tags[(at - 1) * TAGS_PAGE_SIZE : at * TAGS_PAGE_SIZE],
        count=len(tags),
        page=at,
        pages=pages,
        sharing=sharing,
        warnings=warnings,
        sort=sort,
        descending=descending,
        host=host,
        may_delete=page.viewer.may_delete(name),
        deleted=page.param("deleted"),
    )


async def image(page: Page) -> Response:
    name = await _name(page)
    _visible(page, name)
    ref = page.param("ref")
    details = await run(page.state.view.image, name, ref, page.viewer.may_pull)
    return page.render(
        "image.html",
        title=f"{name}@{fmt.short(details.reference)}",
        name=name,
        image=details,
        may_delete=page.viewer.may_delete(name),
    )


async def storage(page: Page) -> Response:
    jobs = page.state.jobs
    if page.request.method == "POST":
        _check_csrf(page)
        if not await _sees_everything(page):  # a read of the whole store is no small thing
            raise Forbidden("only a user who may pull every repository may read it all again")
        jobs.read_storage()
        return RedirectResponse(page.state.prefix + "/storage", 303)
    running, shown = jobs.storage()
    if running is None:
        running = jobs.read_storage()  # the first visit
    summary = shown.result if shown is not None else None
    everything = await _sees_everything(page)
    # split over what the viewer may see: a hidden repository shares no bytes with theirs
    rows = await run(summary.holdings.totals, page.viewer.may_pull) if summary else []
    return page.render(
        "storage.html",
        title="Storage",
        summary=summary,
        read_at=datetime.fromtimestamp(shown.started, UTC) if shown is not None else None,
        rows=rows,
        job=running if not running.finished else None,
        failed=running.error,
        everything=everything,
        verification=jobs.verification(None),
    )


async def storage_status(page: Page) -> Response:
    running, _ = page.state.jobs.storage()
    if running is None:
        return JSONResponse({"state": "none"})
    status = running.status()
    if not await _sees_everything(page):  # how big the store is: only for them
        status = {k: status[k] for k in ("state", "step")}
    return JSONResponse(status)


async def _sees_everything(page: Page) -> bool:
    """Whether the viewer may pull every repository: what covers the whole store (gc's
    plan, a verification of everything) is shown to such a viewer alone."""
    if page.state.guard.backend is None:  # no authentication: everyone may pull anything
        return True
    names = await run(page.state.view.names)
    return all(page.viewer.may_pull(n) for n in names)


async def _verified(page: Page) -> str | None:
    """The repository a verify request names, or None for the whole store (`all`);
    `NotFound` or `Forbidden` where the viewer may not see it all."""
    if page.param("all"):
        if not await _sees_everything(page):
            raise Forbidden("only a user who may pull every repository may verify them all")
        return None
    name = await _name(page)
    _visible(page, name)
    if not await run(page.state.view.holds, name):  # no job for a name the store lacks
        raise NotFound(f"repository {name} not found")
    return name


async def verify(page: Page) -> Response:
    name = await _verified(page)
    jobs = page.state.jobs
    query = urlencode({"name": name} if name is not None else {"all": "1"})
    if page.request.method == "POST":
        _check_csrf(page)
        jobs.verify(name)
        return RedirectResponse(page.state.prefix + "/verify?" + query, 303)
    title = f"Verify {name}" if name is not None else "Verify the whole store"
    return page.render("verify.html", title=title, name=name, job=jobs.verification(name))


async def verify_status(page: Page) -> Response:
    name = await _verified(page)
    job = page.state.jobs.verification(name)
    return JSONResponse(job.status() if job else {"state": "none"})


async def login(page: Page) -> Response:
    backend = page.state.guard.backend
    if not isinstance(backend, BasicAuth):
        return page.render(
            "error.html", 404, title="No sign-in", message="this registry has no htpasswd users"
        )
    if page.request.method == "GET":
        return page.render("login.html", title="Sign in", failed=False)
    _check_csrf(page)
    user, password = page.form.get("user", ""), page.form.get("password", "")
    address = page.request.client.host if page.request.client else "unknown"
    await backend.throttle.wait(address)
    credential = backend.htpasswd.entries().get(user)  # what the password is checked against
    ok = bool(user) and await run(backend.htpasswd.verify, user, password)
    if not ok:
        backend.throttle.failed(address)
        log.warning("failed UI login for user %r from %s", user[:100], address)
        return page.render("login.html", 401, title="Sign in", failed=True)
    backend.throttle.succeeded(address)
    response = RedirectResponse(page.state.prefix + "/", 303)
    set_session(response, page.state, page.state.signer.new(user, credential), page.request)
    return response


async def logout(page: Page) -> Response:
    _check_csrf(page)
    page.state.signer.end(page.session)
    response = RedirectResponse(page.state.prefix + "/", 303)
    set_session(response, page.state, page.state.signer.new(), page.request)
    return response


async def delete(page: Page) -> Response:
    """A tag (`tag`) or a manifest with every tag on it (`digest`), through the API's own
    `Registry.delete_tag` / `delete_manifest`; asks first unless `confirm` is given."""
    _check_csrf(page)
    name = await _name(page)
    _visible(page, name)
    view = page.state.view
    if not page.viewer.may_delete(name) or view.registry is None:
        return page.render(
            "error.html", 403, title="Not allowed", message=f"you may not delete in {name}"
        )
    tag, digest_text = page.form.get("tag", ""), page.form.get("digest", "")
    target = f"{name}:{tag}" if tag else f"{name}@{digest_text}"
    if page.form.get("confirm") != "yes":
        return page.render(
            "confirm.html", title="Delete?", name=name, tag=tag, digest=digest_text, target=target
        )
    if tag:
        await run(view.registry.delete_tag, name, check_tag(tag))
    else:
        try:
            digest = Digest.parse(digest_text)
        except ValueError:
            raise NotFound(f"no manifest {digest_text[:100]!r}") from None
        await run(view.registry.delete_manifest, name, digest)
    await run(view.forget, name)
    log.info("UI: %s deleted %s", page.viewer.user or "anonymous", target)
    query = urlencode({"name": name, "deleted": target})
    return RedirectResponse(f"{page.state.prefix}/repository?{query}", 303)


def _check_csrf(page: Page) -> None:
    if not same_token(page.form.get("csrf"), page.session):
        raise Forbidden("the form has expired or did not come from this page: reload and retry")


class FormTooLarge(RegtoolError):
    """A form body larger than any of the UI's forms."""


class Forbidden(RegtoolError):
    """A form without the session's CSRF token; shown as a page saying so."""
