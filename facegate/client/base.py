"""The client's plumbing: the HTTP session, problem+json errors, paging, uploads, and the
``@route`` declaration that ties each method to the OpenAPI operation it calls (a test checks
that every operation has exactly one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx

PhotoArg = str | Path | bytes | tuple[str, bytes]
RouteKey = tuple[str, str]
F = TypeVar("F", bound=Callable[..., Any])
API = "/api/v1"


class FaceGateAPIError(Exception):
    """A problem+json error from the server, with its fields."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code = problem.get("code", "")
        self.detail = problem.get("detail", "")
        self.request_id = problem.get("request_id", "")
        super().__init__(f"{status} {self.code}: {self.detail}")


def route(method: str, path: str) -> Callable[[F], F]:
    """Declare the operation a client method calls: ``@route("GET", "/api/v1/galleries/{gallery}")``."""

    def mark(fn: F) -> F:
        fn.__facegate_route__ = (method.upper(), path)  # type: ignore[attr-defined]
        return fn

    return mark


def seg(value: object) -> str:
    """A value as one URL path segment: "#", "?", "%", "/" and spaces must not end or split the path."""
    return quote(str(value), safe="")


def photo_file(photo: PhotoArg, index: int = 0) -> tuple[str, bytes]:
    """An upload as (file name, bytes): a path is read, bytes get a made-up name."""
    if isinstance(photo, tuple):
        return photo
    if isinstance(photo, bytes):
        return (f"photo{index}", photo)
    path = Path(photo)
    return (path.name, path.read_bytes())


def form(**fields: Any) -> dict[str, str]:
    """Multipart form fields, leaving out the ``None`` ones; booleans as the server parses them."""
    return {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in fields.items() if v is not None}


class ClientBase:
    """The HTTP session and the route table; the resource mixins add the methods."""

    ROUTES: ClassVar[dict[RouteKey, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        routes: dict[RouteKey, str] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                key = getattr(value, "__facegate_route__", None)
                if key is not None:
                    routes[key] = name
        cls.ROUTES = routes

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, template: str, **params: object) -> str:
        """A route's path with its parameters filled in, each as one segment."""
        return template.format(**{k: seg(v) for k, v in params.items()})

    def _response(self, method: str, path: str, ok: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        """The raw response; 4xx/5xx raise :class:`FaceGateAPIError` unless listed in ``ok``.

        Signed in as an operator (the ``fg_session`` cookie), an unsafe request echoes the
        ``fg_csrf`` cookie in the X-CSRF-Token header, as the server asks."""
        csrf = self.http.cookies.get("fg_csrf")
        if csrf and method.upper() not in ("GET", "HEAD", "OPTIONS"):
            kwargs["headers"] = {"X-CSRF-Token": csrf, **(kwargs.get("headers") or {})}
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400 and response.status_code not in ok:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text}
            if not isinstance(problem, dict):
                problem = {"detail": problem}
            raise FaceGateAPIError(response.status_code, problem)
        return response

    def _call(self, method: str, path: str, ok: tuple[int, ...] = (), **kwargs: Any) -> Any:
        """The response's JSON (None for an empty answer)."""
        response = self._response(method, path, ok, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _pages(self, path: str, params: dict[str, Any] | None = None, limit: int = 100,
               max_items: int | None = None) -> Iterator[Any]:
        """Every item of a paged list, following ``next_cursor`` (at most ``max_items``)."""
        cursor, seen = None, 0
        while True:
            query = {k: v for k, v in (params or {}).items() if v is not None}
            query["limit"] = min(limit, max_items - seen) if max_items else limit
            if cursor:
                query["cursor"] = cursor
            page = self._call("GET", path, params=query)
            for item in page["items"]:
                yield item
                seen += 1
                if max_items and seen >= max_items:
                    return
            cursor = page.get("next_cursor")
            if not cursor:
                return


_C = TypeVar("_C", bound=ClientBase)
