"""The OpenAPI document a client generator can use, and the docs pages that show it without the internet.

FastAPI derives paths, parameters and response bodies from the routes and their response models; this module
adds what it cannot see: the two bodies of ``POST /toonify`` (a multipart form and JSON, both from the options
model, parsed by hand to bound them), its webhook callback, every error status each route answers (as
``ErrorBody``, replacing FastAPI's ``HTTPValidationError``, which this API never sends), its binary answers
and the bearer scheme. ``/docs`` (Swagger UI 5, Apache-2.0) and ``/redoc`` (ReDoc, MIT) load only files this
server serves, vendored under ``static/`` (PyPI's swagger-ui-bundle for Python 3.7 ships Swagger UI 4, which
cannot read OpenAPI 3.1)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.responses import FileResponse, HTMLResponse

from ..config import Settings
from ..errors import NotFound
from ..options import ToonifyOptions
from .errors import ErrorBody
from .views import WebhookPayload

STATIC = Path(__file__).parent / "static"
ASSETS = {"swagger-ui.css": ("swagger-ui", "text/css"), "swagger-ui-bundle.js": ("swagger-ui", "text/javascript"),
          "favicon-32x32.png": ("swagger-ui", "image/png"), "redoc.standalone.js": ("redoc", "text/javascript")}
OPEN = ("/", "/healthz", "/readyz", "/metrics", "/config", "/docs", "/redoc", "/openapi.json")

ERROR_MEANINGS = {
    400: "bad request: empty, damaged, missing or several files, a body that is not valid JSON, or a malformed "
         "signed link",
    401: "an API key is needed: send 'Authorization: Bearer <key>' (unauthorized: none was sent; key_not_accepted: "
         "the key sent is not one of the server's)",
    403: "a signed link that expired or does not match its job: get fresh links from the job view",
    404: "no such job (unknown, deleted, or expired), or no such face",
    409: "the job has not succeeded (yet), or was cancelled",
    413: "too many bytes or pixels",
    415: "not an image this server reads, or neither multipart/form-data nor application/json",
    422: "no usable face, an invalid or unknown option (the message names it), or a photo URL the server will "
         "not fetch (not http(s), private or loopback, a web page)",
    429: "the queue is full: retry after Retry-After seconds",
    503: "still loading the models, the job queue cannot be reached, or too many uploads or archives at once "
         "(server_busy): retry after Retry-After seconds",
    507: "the server's storage is full: try again later",
    502: "the photo's URL could not be fetched: no connection, an error answer, or too many redirects",
    504: "the photo's URL did not deliver it within TOONIFY_FETCH_TIMEOUT_S",
}
ERRORS_BY_ROUTE: Dict[Tuple[str, str], Tuple[int, ...]] = {
    ("/toonify", "post"): (400, 401, 409, 413, 415, 422, 429, 502, 503, 504, 507),
    ("/faces", "post"): (400, 401, 413, 415, 422, 503),
    ("/jobs", "get"): (401, 422),
    ("/jobs/{job_id}", "get"): (400, 401, 403, 404),
    ("/jobs/{job_id}", "delete"): (401, 404),
    ("/jobs/{job_id}/events", "get"): (400, 401, 403, 404),
    ("/jobs/{job_id}/result", "get"): (400, 401, 403, 404, 409, 422),
    ("/jobs/{job_id}/render", "post"): (401, 404, 409, 422, 503),
    ("/jobs/{job_id}/archive", "get"): (400, 401, 403, 404, 409, 422, 503, 507),
    ("/jobs/{job_id}/preview", "get"): (400, 401, 403, 404, 422),
    ("/config", "get"): (),
    ("/readyz", "get"): (503,),
}


PHOTO_FORMATS = "JPEG, PNG, WebP, HEIC, BMP, TIFF, GIF"


def _request_fields(default_steps: int, max_steps: int) -> Dict[str, Any]:
    """The options model plus the other fields both bodies of ``POST /toonify`` take. Every default is valid on
    a default server, so that Swagger UI's "Try it out" (which fills in defaults, or samples where there are
    none, such as https://example.com/ for a URI) sends a request that works: no webhook, no URL."""
    schema = ToonifyOptions.model_json_schema()
    schema["properties"]["steps"].update(default=default_steps, maximum=max_steps)
    return dict(
        schema["properties"],
        method={"type": "string", "enum": ["project", "fast"], "default": "project",
                "description": "project: the faithful projection; fast: the distilled student, if the server "
                               "has one (answers at once, no job)"},
        webhook={"type": "string", "maxLength": 2000, "default": "",
                 "description": "http(s) URL that receives the job's events as signed JSON POSTs (only when the "
                                "server sets TOONIFY_WEBHOOK_SECRET: GET /config says 'webhooks'); empty: none"},
        webhook_events_filter={"type": "array", "items": {"type": "string",
                                                          "enum": ["start", "progress", "completed"]},
                               "default": [], "description": "which events to send (repeat the field or separate "
                                                             "with commas); default: all"},
    )


def form_schema(default_steps: int, max_steps: int) -> Dict[str, Any]:
    """The multipart form of ``POST /toonify``: the photo as a file, or its URL, and the other fields."""
    return {"title": "ToonifyForm", "type": "object", "additionalProperties": False,
            "description": "send the photo as the file 'image' or its URL in 'image_url' (one of them)",
            "properties": dict(
                image={"type": "string", "format": "binary", "description": "the photo (%s)" % PHOTO_FORMATS},
                image_url={"type": "string", "maxLength": 2000, "default": "",
                           "description": "instead of 'image': an http(s) URL the server fetches the photo from "
                                          "(public addresses only; within the upload's size limit and "
                                          "TOONIFY_FETCH_TIMEOUT_S)"},
                **_request_fields(default_steps, max_steps))}


def json_schema(default_steps: int, max_steps: int) -> Dict[str, Any]:
    """The JSON body of ``POST /toonify``, as Cog/Replicate and BentoML clients send it."""
    fields = _request_fields(default_steps, max_steps)
    fields["webhook_events_filter"] = dict(fields["webhook_events_filter"], description="which events to send; "
                                                                                       "default: all")
    return {"title": "ToonifyJSON", "type": "object", "additionalProperties": False, "required": ["image"],
            "properties": dict(
                image={"type": "string", "example": "https://example.org/photo.jpg",
                       "description": "the photo: a data URL (data:image/jpeg;base64,…, at most the upload size "
                                      "limit once decoded) or an http(s) URL the server fetches it from (as "
                                      "'image_url' in the form)"},
                **fields)}


BINARY = {"schema": {"type": "string", "format": "binary"}}


def _ref(name: str) -> Dict[str, str]:
    return {"$ref": "#/components/schemas/%s" % name}


def _json(name: str) -> Dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _toonify_operation(operation: Dict[str, Any]) -> None:
    operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": _ref("ToonifyForm")},
                                                              "application/json": {"schema": _ref("ToonifyJSON")}}}
    operation["responses"]["200"] = {
        "description": "the result image (face=all with output other than paste: application/zip with one "
                       "image per face); with 'Accept: text/event-stream', the job's events",
        "content": {**{media: BINARY for media in ("image/png", "image/jpeg", "image/webp", "application/zip")},
                    "text/event-stream": {"schema": {"type": "string"}}}}
    operation["callbacks"] = {"webhook": {"{$request.body#/webhook}": {"post": {
        "requestBody": {"content": _json("WebhookPayload")},
        "responses": {"200": {"description": "any 2xx acknowledges; anything else is retried with back-off"}}}}}}


def _document_errors(path: str, method: str, operation: Dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's HTTPValidationError: this API answers ErrorBody instead
    statuses = ERRORS_BY_ROUTE.get((path, method), (401, 404, 422) if path not in OPEN else ())
    for status in statuses:
        responses[str(status)] = {"description": ERROR_MEANINGS[status], "content": _json("ErrorBody")}
    if path not in OPEN:
        operation["security"] = [{"bearerAuth": []}]


def build_openapi(app: FastAPI, settings: Settings) -> Dict[str, Any]:
    # one schema per model: the API's models are answers only (FastAPI 0.103 would name the 202's JobView
    # "JobView-Input")
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                         separate_input_output_schemas=False)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (ErrorBody, WebhookPayload):  # named in the error tables and the callback, not by a route
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(model_schema.pop("$defs", {}))
        schemas[model.__name__] = model_schema
    schemas["ToonifyForm"] = form_schema(settings.default_steps, settings.max_steps)
    schemas["ToonifyJSON"] = json_schema(settings.default_steps, settings.max_steps)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = {"bearerAuth": {
        "type": "http", "scheme": "bearer",
        "description": "needed when the server sets TOONIFY_API_KEYS; GET URLs also take ?access_token=<key>"}}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if (path, method) == ("/toonify", "post"):
                _toonify_operation(operation)
            _document_errors(path, method, operation)
    return schema


SWAGGER_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>%(title)s — API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"><link rel="icon" href="/docs/assets/favicon-32x32.png">
</head><body><div id="swagger-ui"></div><script src="/docs/assets/swagger-ui-bundle.js"></script><script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", validatorUrl: null, deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});
</script></body></html>"""
REDOC_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>%(title)s — API</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>body{margin:0}</style></head>
<body><div id="redoc"></div><script src="/docs/assets/redoc.standalone.js"></script><script>
Redoc.init("/openapi.json", {hideDownloadButton: false}, document.getElementById("redoc"));
</script></body></html>"""


def install_docs(app: FastAPI, settings: Settings) -> None:
    """The OpenAPI document (built once) and the two offline docs pages."""

    def openapi() -> Dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    async def swagger_page() -> HTMLResponse:
        return HTMLResponse(SWAGGER_PAGE % {"title": app.title})

    @app.get("/redoc", include_in_schema=False)
    async def redoc_page() -> HTMLResponse:
        return HTMLResponse(REDOC_PAGE % {"title": app.title})

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise NotFound("no such docs asset")
        folder, media = ASSETS[name]
        return FileResponse(str(STATIC / folder / name), media_type=media, headers={"Cache-Control": "max-age=86400"})
