"""The web dashboard at ``/ui``: a single page (plain ES modules, CSS and HTML in
``STATIC_DIR``, no build step) over the same API and credentials as kubectl.

``Dashboard.handle`` answers every request whose path starts with ``/ui``; the API
server's ``APIApp.handle`` calls it before its own authentication, so the hot path of
every other request pays one ``startswith``. What each path needs:

=========================== ============================ ==================================
path                        who                          module
=========================== ============================ ==================================
``/ui`` -> ``/ui/``, files  anyone (the shell holds no   ``static_files.py``
                            data)
``POST /ui/login``          anyone (it checks the token) ``login.py``
``/ui/info``                an authenticated user        here: user, faces up, version
``/ui/faces/NAME/...``      an authenticated user; the   ``faces.py``: the Mesos master,
                            face authorizes the call     Marathon, Chronos beside the server
``/ui/watch?w=...``         an authenticated user; the   ``watch_mux.py``: many watches in
                            API authorizes each watch    one response (browsers' 6 conns)
=========================== ============================ ==================================

No API-server RBAC is asked for these paths: anonymous users hold no rule for
non-resource URLs, the files are public, and a face does its own SubjectAccessReviews.
Every datum the page shows comes from the API (or a face) with the user's token, so the
page can show and do exactly what that token may.

This package sits below ``apiserver`` (import-linter's layers): the API server hands it
its authenticator as two callables and the faces' URLs; it imports neither ``apiserver``
nor ``storage``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import orjson
from aiohttp import web

from corral.api import errors
from corral.dashboard.faces import Faces
from corral.dashboard.login import TokenCheck, User, login
from corral.dashboard.static_files import SECURITY_HEADERS, STATIC_DIR, StaticFiles
from corral.dashboard.watch_mux import WatchMux

__all__ = ["STATIC_DIR", "Dashboard", "User"]

PREFIX = "/ui"
FACES_PREFIX = "/ui/faces/"
ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"


class Dashboard:
    """The ``/ui`` paths of one API server (module docstring).

    ``authenticate``: the request's user (the API server's chain; raises the 401 Status
    for a token nobody accepts, gives the anonymous user without credentials);
    ``check_token``: the user a bearer token proves, or None; ``faces``: face name
    (``mesos``, ``marathon``, ``chronos``) -> base URL of the ones this server started;
    ``version``: the server's gitVersion, for the page's footer."""

    def __init__(
        self,
        *,
        authenticate: Callable[[web.Request], User],
        check_token: TokenCheck,
        faces: Mapping[str, str] | None = None,
        version: str = "",
        static_dir: Path = STATIC_DIR,
    ) -> None:
        self.authenticate = authenticate
        self.check_token = check_token
        self.faces = Faces(faces or {})
        self.version = version
        self.files = StaticFiles(static_dir)
        #: ``/ui/watch``; ``Server.start`` points it at the server itself (``target``)
        self.watches = WatchMux()

    async def close(self) -> None:
        """Close the faces' and the watches' client sessions (the server is stopping)."""
        await self.faces.close()
        await self.watches.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer a request under ``/ui``; raises ``StatusError`` (404, 401, 405...) for
        the caller to turn into a Status body."""
        path = request.path
        if path == PREFIX:
            if request.method not in ("GET", "HEAD"):
                raise errors.method_not_allowed()
            qs = request.query_string
            location = PREFIX + "/" + (f"?{qs}" if qs else "")
            return web.Response(status=301, headers={**SECURITY_HEADERS, "Location": location})
        if not path.startswith(PREFIX + "/"):  # /uiX: not ours, and nobody else's
            raise errors.path_not_found()
        if path == "/ui/login":
            return await login(request, self.check_token)
        if path == "/ui/info":
            user = self.user(request)
            if request.method != "GET":
                raise errors.method_not_allowed()
            return await self.info(user)
        if path == "/ui/watch":
            self.user(request)
            return await self.watches.serve(request)
        if path.startswith(FACES_PREFIX):
            self.user(request)
            raw = request.raw_path  # encoded path and query, as the face must get them
            if not raw.startswith(FACES_PREFIX):  # /ui/%66aces/..., an absolute-form target
                raise errors.path_not_found()
            name, slash, rest = raw[len(FACES_PREFIX) :].partition("/")
            if not slash:  # /ui/faces/NAME?x or /ui/faces/NAME: the face's root
                name, q, query = name.partition("?")
                rest = "?" + query if q else ""
            return await self.faces.proxy(request, name, "/" + rest)
        return self.files.response(request, path[len(PREFIX) + 1 :])

    def user(self, request: web.Request) -> User:
        """The request's authenticated user; 401 Status for the anonymous one."""
        user = self.authenticate(request)
        if user.username == ANONYMOUS or UNAUTHENTICATED in user.groups:
            raise errors.unauthorized()
        return user

    async def info(self, user: User) -> web.Response:
        """``GET /ui/info``: who the page is logged in as, which faces answer, and the
        server's version."""
        answer = {
            "user": user.username,
            "groups": list(user.groups),
            "faces": await self.faces.available(),
            "version": self.version,
        }
        return web.Response(
            body=orjson.dumps(answer),
            headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
        )
