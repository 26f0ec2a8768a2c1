"""The API server's HTTP entry: authentication, error mapping and the route table.

Every request passes one function, ``APIApp.handle`` (the middleware), which
authenticates it (``authn.py``), applies the
``Impersonate-*`` headers (``identity.py``), gives it a seat of its priority level
(``flowcontrol.py``: API Priority and Fairness, 429 when full), authorizes it
(``authz.py``: upstream's 403 when no authorizer allows it; ``system:masters`` skips
the question), keeps the resulting user as ``request["user"]`` for the handlers and
admission, and gzips a big answer (``compression.py``), turns any
``StatusError`` into its Status body, and any unexpected exception into a 500 Status
that is logged (no client request can stop the server); it also times every resource
request the handlers serve for ``apiserver_request_duration_seconds``
(``request_metrics.py``; ``/metrics``). Routes are few: discovery,
OpenAPI, health, and one catch-all that parses the Kubernetes REST path and hands it to
the generic ``ResourceHandler``. Paths under ``/ui`` (the web dashboard, ``dashboard/``)
leave ``handle`` first, before authentication and flow control: its files and login are
public, and it authenticates the rest itself without asking RBAC (anonymous users hold
no rule for non-resource URLs; the faces it proxies to authorize each call).

``APIApp.build`` gives aiohttp's low-level ``web.Server`` (``server.py`` runs it in a
``web.ServerRunner``), not an ``Application``: a router, a middleware chain and a
response signal in front of a handler that routes itself cost ~11-14 µs of CPU a
request and changed no answer. What they did that a client can see, ``handle`` and the
request class do the same way (``tests/unit/apiserver/test_app_http.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from time import perf_counter
from typing import Any, cast

from aiohttp import HttpVersion11, StreamReader, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.hdrs import EXPECT
from aiohttp.http_parser import RawRequestMessage
from aiohttp.web_protocol import RequestHandler

from corral.api import errors
from corral.api.rbac import PRIVILEGED_GROUP
from corral.apiserver import compression, identity
from corral.apiserver.aggregator import Aggregator
from corral.apiserver.authn import Authenticator
from corral.apiserver.authz import Authorizer, default_chain, forbidden
from corral.apiserver.discovery import AGGREGATED_CT, VERSION_INFO, Discovery, wants_aggregated
from corral.apiserver.fencing import FENCE_HEADER, Fencing
from corral.apiserver.flowcontrol import REQUEST_INFO_KEY, FlowControl
from corral.apiserver.handlers import ResourceHandler, json_response
from corral.apiserver.identity import UserInfo
from corral.apiserver.openapi import OpenAPIDocs
from corral.apiserver.openapi_v2 import OpenAPIV2
from corral.apiserver.request import parse_path
from corral.apiserver.request_info import resolve
from corral.apiserver.request_metrics import RequestDurations
from corral.apiserver.reviews import Reviews, review_row
from corral.apiserver.store import Registry
from corral.dashboard import Dashboard
from corral.storage.base import StorageFull, StorageUnavailable

log = logging.getLogger("corral.apiserver")

#: aiohttp's limit on a request body: the handlers' 3 MiB and room; 413 past it
CLIENT_MAX_SIZE = 3 * 1024 * 1024 + 1024
#: what every ``Impersonate-*`` header name starts with (any case)
IMPERSONATE = "impersonate-"
#: what ``route`` leaves in a resource request for the duration histogram
DURATION_LABELS = "duration_labels"


def status_response(e: errors.StatusError) -> web.Response:
    return web.Response(body=e.body(), status=e.code, headers={"Content-Type": "application/json"})


async def _expect_continue(request: web.Request) -> None:
    """aiohttp's default ``Expect`` handling: ``100 Continue`` for HTTP/1.1's
    ``100-continue``, 417 for anything else."""
    expect = request.headers.get(EXPECT, "")
    if request.version == HttpVersion11:
        if expect.lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the body has not started yet
        else:
            raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")


class APIApp:
    """The API server's requests over a Registry: ``handle`` serves each, ``build`` gives
    the aiohttp server that calls it."""

    def __init__(
        self,
        registry: Registry,
        discovery: Discovery,
        openapi: OpenAPIDocs,
        tokens: set[str],
        token_file: dict[str, UserInfo] | None = None,
        faces: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry
        if registry.authorizer is None:  # server.py builds the chain; tests may not
            registry.authorizer = default_chain(registry)
        #: the authorizer chain (``authz.py``), shared with admission through the registry
        self.authorizer: Authorizer = registry.authorizer
        self.discovery = discovery
        self.openapi = openapi
        self.openapi_v2 = OpenAPIV2(openapi)
        self.tokens = tokens
        self.handler = ResourceHandler(registry)
        #: the access reviews (``apiserver/reviews.py``): answered, never stored
        self.reviews = Reviews(registry)
        #: the authenticator chain (``apiserver/authn.py``): admin token, token file,
        #: client certificates, then ``authn.token_authenticators`` (SA JWTs, bootstrap)
        self.authn = Authenticator(tokens, token_file)
        self.reviews.authenticator = self.authn
        #: the aggregation layer (``apiserver/aggregator.py``): None serves no APIService
        self.aggregator: Aggregator | None = None
        #: API Priority and Fairness (``flowcontrol.py``): seats and fair queues per level
        self.flowcontrol = FlowControl(object_count=registry.object_count)
        #: the leader-election fence on elected writers' requests (``fencing.py``)
        self.fencing = Fencing(registry)
        #: ``apiserver_request_duration_seconds`` (``request_metrics.py``)
        self.durations = RequestDurations()
        # pods/log and pods/exec reach node agents with the API server's own token
        self.handler.agent_token = min(tokens) if tokens else None
        #: the web UI under ``/ui`` (``dashboard/``); ``faces``: name -> URL of the Mesos
        #: master, Marathon and Chronos started beside this server, for its proxy
        self.dashboard = Dashboard(
            authenticate=self.authenticate,
            check_token=self.token_user,
            faces=faces,
            version=str(VERSION_INFO["gitVersion"]),
        )

    async def close(self) -> None:
        """Release what serving opened beyond the listener (the dashboard's client)."""
        await self.dashboard.close()

    def build(self) -> web.Server:
        """The aiohttp server for a ``web.ServerRunner``: aiohttp's low-level
        ``web.Server`` hands every request straight to ``handle``. No Application,
        router or middleware chain sits between (``route`` parses the path itself, so
        they only cost CPU per request); ``handle`` keeps what they did: the
        ``Expect: 100-continue`` answer, aiohttp's 404 for a target that is no path,
        the body limit, and the flow-control headers on every response prepared."""
        loop = asyncio.get_running_loop()
        api = self

        class APIRequest(web.Request):
            # what Application's on_response_prepare signal did, without the signal
            async def _prepare_hook(self, response: web.StreamResponse) -> None:
                await api.flowcontrol.on_response_prepare(self, response)

            # the request's items, read several times a request: Mapping.get would call
            # __getitem__ and catch the KeyError of every absent one
            def get(self, key: Any, default: Any = None) -> Any:
                return self._state.get(key, default)

        def make_request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.Request:
            return APIRequest(
                message, payload, protocol, writer, task, loop, client_max_size=CLIENT_MAX_SIZE
            )

        # every request the server makes is an APIRequest
        handler = cast(Callable[[web.BaseRequest], Awaitable[web.StreamResponse]], self.handle)
        return web.Server(
            handler, request_factory=make_request, handler_cancellation=True, access_log=None
        )

    def authenticate(self, request: web.Request) -> UserInfo:
        """Who sent ``request`` (before impersonation), by ``self.authn``'s chain: a
        client certificate, a bearer token, else ``system:anonymous``; raises 401 for a
        token nobody accepts. A server with no token at all (tests) treats everyone as
        the admin."""
        if not self.tokens:
            return identity.ADMIN
        return self.authn.authenticate(request)

    def token_user(self, token: str) -> UserInfo | None:
        """The user a bearer token proves by ``self.authn``'s chain (the dashboard's
        login), None when refused; as ``authenticate``, the admin without tokens."""
        if not self.tokens:
            return identity.ADMIN
        return self.authn.authenticate_token(token).user

    def authorize(self, request: web.Request, user: UserInfo) -> None:
        """Ask the authorizer chain about ``request`` as ``user``: upstream's 403 when
        nobody allows it."""
        info = request.get(REQUEST_INFO_KEY) or resolve(request.method, request.path, request.query)
        attrs = info.attributes(user.username, user.groups)
        decision = self.authorizer.authorize(attrs)
        if not decision.allowed:
            raise forbidden(attrs, decision.reason)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Every request: answers ``Expect`` as aiohttp's router did, then authenticates,
        admits, authorizes and routes it (module docstring); the only place errors
        become Status bodies."""
        if request.headers.get(EXPECT):  # before anything else, as aiohttp's router
            await _expect_continue(request)
        start = perf_counter()
        try:
            if request.path.startswith("/ui"):  # the dashboard: public shell, own authn
                return await self.dashboard.handle(request)
            user = self.authenticate(request)
            if IMPERSONATE in ",".join(request.headers).lower():  # else nothing to apply
                user = identity.impersonated(user, request.headers, self.authorizer)
            request["user"] = user
            async with self.flowcontrol.admit(request, user) as seat:  # 429 when full
                if PRIVILEGED_GROUP not in user.groups:  # system:masters: allowed, no question
                    self.authorize(request, user)
                resp = await self.route(request)
                compression.compress(request, resp)  # over 128 KiB, when gzip is welcome
                if seat:  # sent while the seat is held
                    await self.flowcontrol.send(request, resp)
                return resp
        except errors.StatusError as e:
            return status_response(e)
        except web.HTTPException as e:
            if e.status == 413:
                return status_response(errors.too_large())
            raise
        except (ConnectionResetError, TimeoutError) as e:
            log.debug("client went away: %s", e)
            raise
        except StorageFull as e:  # the write did not happen: 507, not a 500
            return status_response(errors.insufficient_storage(str(e)))
        except StorageUnavailable as e:  # etcd unreachable: clients may retry elsewhere
            return status_response(errors.StatusError(503, errors.SERVICE_UNAVAILABLE, str(e)))
        except Exception as e:
            log.exception("internal error on %s %s", request.method, request.path_qs)
            return status_response(errors.internal(f"{type(e).__name__}: {e}"))
        finally:  # a resource request the handlers served, whatever it answered
            labels = request.get(DURATION_LABELS)
            if labels is not None:
                self.durations.observe(labels, perf_counter() - start)

    async def route(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/"):  # ``OPTIONS *``: aiohttp's router found no route
            raise web.HTTPNotFound()
        path = path.rstrip("/") or "/"
        method = request.method
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/metrics" and method == "GET":  # flow control, slow watchers, durations
            text = (
                self.flowcontrol.metrics()
                + self.registry.cache.backlog.metrics()
                + self.durations.metrics()
            )
            return web.Response(text=text, content_type="text/plain")
        if path == "/version":
            return json_response(self.discovery.version)
        if path == "/api":
            return self._discovery(request, self.discovery.api, self.discovery.aggregated_api)
        if path == "/apis":
            return self._discovery(request, self.discovery.apis, self.discovery.aggregated_apis)
        if path == "/openapi/v2" and method == "GET":
            return self.openapi_v2.response(request)
        if path == "/openapi/v3":
            return json_response(self.openapi.index())
        if path.startswith("/openapi/v3/"):
            doc = self.openapi.document(path[len("/openapi/v3/") :])
            if doc is None:
                raise errors.path_not_found()
            return json_response(
                doc,
                headers={"Cache-Control": "public, immutable"}
                if request.query.get("hash")
                else None,
            )
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] == "apis" and self.aggregator is not None:
            claimed = self.aggregator.claims(parts[1], parts[2])
            if claimed is not None:
                return await self.aggregator.proxy(request, claimed)
        if len(parts) == 2 and parts[0] == "apis" and method == "GET":
            group_doc = self.discovery.group_docs.get(parts[1])
            if group_doc is not None:
                return json_response(group_doc)
        p = parse_path(path)
        if p is None:
            raise errors.path_not_found()
        if not p.resource:
            if method != "GET":
                raise errors.method_not_allowed()
            gv = f"{p.group}/{p.version}" if p.group else p.version
            doc = self.discovery.resource_lists.get(gv)
            if doc is None:
                raise errors.path_not_found()
            return json_response(doc)
        review = review_row(p)
        if review is not None:
            if not p.subresource:
                request[DURATION_LABELS] = self.durations.labels(
                    method, request.query, request.headers, p, review
                )
            return await self.reviews.handle(request, p, review)
        info = self.registry.by_gvr.get((p.group, p.version, p.resource))
        if info is None:
            raise errors.path_not_found()
        request[DURATION_LABELS] = self.durations.labels(
            method, request.query, request.headers, p, info
        )
        fence = request.headers.get(FENCE_HEADER) if method != "GET" else None
        if fence is not None:  # an elected writer: refused once deposed (fencing.py)
            await self.fencing.check(fence, p.group, p.resource, p.namespace, p.name)
        return await self.handler.dispatch(request, p, info)

    def _discovery(self, request: web.Request, legacy: bytes, aggregated: bytes) -> web.Response:
        if request.method != "GET":
            raise errors.method_not_allowed()
        if wants_aggregated(request.headers.get("Accept", "")):
            etag = Discovery.etag(aggregated)
            headers = {"ETag": etag, "Vary": "Accept"}
            if etag in request.headers.get("If-None-Match", ""):
                return web.Response(status=304, headers=headers)
            return json_response(aggregated, headers=headers, content_type=AGGREGATED_CT)
        return json_response(legacy)
