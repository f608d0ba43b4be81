"""What the server says about itself, as the response models of its routes: liveness (``/healthz``), its
defaults and limits (``/config``) and its styles (``/styles``)."""
from __future__ import annotations

from typing import List, Optional

from pydantic import BaseModel, Field
from typing_extensions import Literal

from ..options import ToonifyOptions


class Health(BaseModel):
    """The liveness answer: the process and its event loop answer."""

    status: Literal["ok"]


class StyleEntry(BaseModel):
    """One style a job can be rendered in."""

    name: str = Field(..., description="what style= takes")
    display_name: str
    licence: str = Field("", description="the weights' licence, as the server's NAME.json says")
    default_strength: float = Field(..., ge=0, le=1, description="the strength used when a request names none")
    blended_at_load: bool = Field(False, description="a fine-tune blended with FFHQ when the server started")
    thumbnail: Optional[str] = Field(None, description="data:image/png URL: the average face in this style")


class RefusedStyle(BaseModel):
    name: str
    reason: str = Field(..., description="why the server does not serve it (e.g. another resolution)")


class StyleList(BaseModel):
    styles: List[StyleEntry] = Field(..., description="the default toon first")
    refused: List[RefusedStyle]


class Limits(BaseModel):
    max_steps: int
    max_upload_bytes: int
    max_pixels: int
    max_queue: int
    max_body_bytes_in_flight: int = Field(..., description="request bodies the server holds at once; past it "
                                                           "a 503 server_busy with Retry-After")


class ServerConfig(BaseModel):
    """What a client (the web page) needs before it sends a photo."""

    defaults: ToonifyOptions
    limits: Limits
    engine: str
    test_models: bool = Field(..., description="true when the models are tiny random test models (noise, not "
                                                "faces)")
    test_models_warning: Optional[str] = None
    models_error: Optional[str] = Field(None, description="why the models cannot serve (a file missing or failing "
                                                          "to load, and what to do); null when they can")
    models_loading: bool = Field(False, description="true while the models load (ask again)")
    auth: bool = Field(..., description="true when the server needs 'Authorization: Bearer <key>'")
    webhooks: bool = Field(..., description="true when the server signs and sends webhooks")
    styles: List[str] = Field(..., description="the style names (GET /styles has the details)")
