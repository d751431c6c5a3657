"""The HTTP JSON API (`/v1/...`) and the chat's sign-in page, as a FastAPI router.

Every answer is the engine's own `Answer.to_dict()`, as `qa ask --json` prints it. Errors are JSON
`{"error": message, "status": code}` with the matching status.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from ..api import MAX_K, MAX_QUESTION_CHARS
from ..errors import BadQuestionError, QAError
from .guard import SESSION_COOKIE, SIGN_IN_PATH, authorized, session_value
from .policy import Policy

MAX_PAGE = 1000
DOCUMENT_FIELDS = ("doc_id", "title", "outlet", "byline", "date", "url", "chars", "language", "content_hash")


class AskRequest(BaseModel):
    """A question and the filters the engine has (see `QA.ask`)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(max_length=MAX_QUESTION_CHARS, description="the question")
    k: int = Field(5, ge=1, le=MAX_K, description="passages at most")
    history: list[str] = Field(default_factory=list, max_length=20, description="earlier questions, oldest first")
    sources: list[str] | None = Field(None, description="only these doc_ids")
    since: str | None = Field(None, description="published on or after (YYYY-MM-DD)")
    until: str | None = Field(None, description="published on or before (YYYY-MM-DD)")
    outlets: list[str] | None = None
    authors: list[str] | None = None


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def router(bot, asker, policy: Policy) -> APIRouter:
    """The API routes over one opened QA (`bot`, for documents and health) and the place its
    questions run (`asker`: in process or in worker processes)."""
    r = APIRouter()

    @r.post("/v1/ask", summary="Answer a question with ranked verbatim passages")
    async def ask(body: AskRequest):
        try:
            answer = await asker.ask_async(**body.model_dump())
        except BadQuestionError as exc:
            return error(400, str(exc))
        except QAError as exc:
            return error(503, str(exc))
        return answer.to_dict()

    @r.get("/v1/documents", summary="The indexed documents: search, sort, page")
    def documents(q: Annotated[str | None, Query(max_length=500, description="words of title, doc_id, byline")] = None,
                  outlet: str | None = None,
                  order: Annotated[str, Query(pattern="^(newest|oldest|title|outlet)$")] = "title",
                  offset: Annotated[int, Query(ge=0)] = 0,
                  limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100):
        try:
            page = bot.find_documents(q, outlet, order, offset, limit)
        except BadQuestionError as exc:
            return error(400, str(exc))
        return {"total": page.total, "matching": page.matching, "offset": page.offset,
                "documents": [{f: getattr(d, f) for f in DOCUMENT_FIELDS} for d in page.documents]}

    @r.get("/v1/health", summary="The index served now: backend, version, size")
    def health():
        try:
            return {"ok": True, "workers": asker.workers, **bot.status().to_dict()}
        except QAError as exc:
            return error(503, str(exc))

    if policy.token:
        @r.get(SIGN_IN_PATH, include_in_schema=False)
        def sign_in_page(request: Request, next: str = "/", failed: int = 0):
            return HTMLResponse(_SIGN_IN.format(next=html.escape(_local(next)),
                                                note="Wrong token." if failed else ""))

        @r.post(SIGN_IN_PATH, include_in_schema=False)
        def sign_in(token: Annotated[str, Form(max_length=1000)] = "", next: Annotated[str, Form()] = "/"):
            headers = {b"authorization": f"Bearer {token}".encode("utf-8", "replace")}
            if not authorized(headers, policy.token):
                return RedirectResponse(f"{SIGN_IN_PATH}?failed=1", status_code=303)
            out = RedirectResponse(_local(next), status_code=303)
            out.set_cookie(SESSION_COOKIE, session_value(policy.token), httponly=True, samesite="strict")
            return out
    return r


def api_app(bot, asker, policy: Policy) -> FastAPI:
    """A FastAPI app serving the API routes, with JSON errors (400 for a malformed request)."""
    app = FastAPI(title="News QA", version="1", summary="Verbatim answers from a folder of news articles",
                  docs_url="/v1/docs", redoc_url=None, openapi_url="/v1/openapi.json")

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return error(400, f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request body")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))

    app.include_router(router(bot, asker, policy))
    return app


def _local(target: str) -> str:
    """A redirect target inside this site only (never another host)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


_SIGN_IN = """<!doctype html><html><head><meta charset="utf-8"><title>News QA: sign in</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 26em; margin: 4em auto">
<h1>News QA</h1><p>This server is shared. Enter the access token you were given.</p>
<form method="post" action="/signin"><input type="hidden" name="next" value="{next}">
<input type="password" name="token" id="token" autofocus style="width: 100%" aria-label="Access token">
<p><button type="submit" id="signin">Sign in</button> <span style="color: #b00">{note}</span></p></form>
</body></html>"""
