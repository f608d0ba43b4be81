"""The ``style`` query parameter of the result and re-render routes, as one dependency: checked against the
styles the server has (a 422 naming them), so a route never renders in a style that does not exist."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from fastapi import Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from typing_extensions import Annotated

from ..errors import InvalidOption
from ..jobs.job import Job
from ..options import AsciiFloat, RenderOptions
from ..styles import StyleCatalog, stored_style
from .deps import ServiceDep


@dataclass(frozen=True)
class StyleChoice:
    """The style asked for (None: the job's own; 'all': every style) and the catalog it was checked in."""

    style: Optional[str]
    catalog: StyleCatalog
    strength: Optional[float] = None  # asked for with the style (result links); None: the default for it

    def style_of(self, job: Job) -> str:
        return self.style or stored_style(job.options)


StyleQuery = Annotated[Optional[str], Query(max_length=40, description="a style of GET /styles, or 'all' (a ZIP of "
                                                                     "every style); default: the job's style")]


async def style_choice(svc: ServiceDep, style: StyleQuery = None) -> StyleChoice:
    catalog = await run_in_threadpool(svc.style_catalog)
    if style is None:
        return StyleChoice(None, catalog)
    try:
        name = RenderOptions(style=style).style
    except ValidationError as exc:
        raise InvalidOption("style: %s" % exc.errors()[0]["msg"]) from None
    catalog.check(name)
    return StyleChoice(name, catalog)


StrengthQuery = Annotated[Optional[AsciiFloat], Query(ge=0.0, le=1.0, description="default: the job's, or another "
                                                                                "style's default strength")]


async def look_choice(choice: Annotated[StyleChoice, Depends(style_choice)], strength: StrengthQuery = None
                      ) -> StyleChoice:
    """The style and, optionally, the strength of a result link."""
    return replace(choice, strength=strength)
