"""Every typed error has an HTTP status: a new ToonifyError whose code is missing from app.api.errors'
table would reach users as a bare 400. Errors are looked for in every module of app/, wherever they live."""
from __future__ import annotations

import importlib
import pkgutil
from typing import List, Type

import app
from app.api.errors import STATUS_BY_CODE, error_response
from app.errors import FaceError, ImageError, QueueFull, ShuttingDown, ToonifyError

GROUPS = (ImageError, FaceError)  # never raised themselves: they group the errors below them


def every_error() -> List[Type[ToonifyError]]:
    for module in pkgutil.walk_packages(app.__path__, "app."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found, todo = [], [ToonifyError]
    while todo:
        for kind in todo.pop().__subclasses__():
            found.append(kind)
            todo.append(kind)
    return found


def test_every_error_code_has_a_status():
    errors = every_error()
    assert {"StorageFull", "FastModeUnavailable", "MalformedForm", "ShuttingDown"} <= {e.__name__ for e in errors}
    missing = ["%s.%s (%s)" % (e.__module__, e.__name__, e.code) for e in errors
               if e not in GROUPS and e.code not in STATUS_BY_CODE]
    assert not missing, "add these codes to app.api.errors.STATUS_BY_CODE: %s" % ", ".join(missing)


def test_an_error_is_answered_with_its_status_body_and_retry_headers():
    response = error_response(ShuttingDown("the server is restarting", retry_after_s=30, job_id="abc"))
    assert response.status_code == 503
    assert response.body == b'{"code":"shutting_down","message":"the server is restarting"}'
    assert response.headers["Retry-After"] == "30" and response.headers["Location"] == "/jobs/abc"
    assert error_response(QueueFull("the queue is full", retry_after_s=7)).status_code == 429
