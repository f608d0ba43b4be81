"""What a user chooses per request, in two validated models: ``ProjectionOptions`` change the projection (and
so key the result cache); ``RenderOptions`` only change how a projection is rendered, so every path (sync,
async result, re-render, cache hit, page, CLI) can honour them without projecting again.

The HTTP form and the CLI take both at once as ``ToonifyOptions``; its JSON schema is the OpenAPI form schema,
so the enums, ranges and defaults are documented once."""
from __future__ import annotations

import re

from pydantic import BaseModel, BeforeValidator, Field, field_validator
from typing_extensions import Annotated, Literal, get_args

from stylegan2.projection import DEFAULT_STEPS
from stylegan2.styles import ALL_STYLES, DEFAULT_STYLE, STYLE_NAME, STYLE_NAME_RULE

OutputKind = Literal["toon", "paste", "aligned", "reconstruction"]
OUTPUT_KINDS = get_args(OutputKind)
MAX_FACE_INDEX = 63
STEPS_CEILING = 2000  # what any server may allow (TOONIFY_MAX_STEPS is at most this)
MAX_DIGITS = 18  # every number the API takes fits; more is refused before any conversion
_INTEGER = re.compile(r"[0-9]{1,%d}" % MAX_DIGITS)
_DECIMAL = re.compile(r"[0-9]{1,%d}(\.[0-9]{1,%d})?" % (MAX_DIGITS, MAX_DIGITS))


def _ascii_number(pattern: "re.Pattern[str]", shape: str):
    """Only ASCII digits are numbers in this API: Python and pydantic would also read '١', '²', '1_0', '+3',
    'nan' or 4,000 digits, and tell them apart differently on each stack. Text is checked here, before any
    conversion; numbers (from the CLI) pass as they are, to the field's range check."""
    def check(value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip(" \t")
        if not pattern.fullmatch(text):
            raise ValueError("must be %s written in ASCII digits (0-9), at most %d of them; got %r"
                             % (shape, MAX_DIGITS, value[:40]))
        return text
    return BeforeValidator(check)


AsciiInt = Annotated[int, _ascii_number(_INTEGER, "a whole number")]
AsciiFloat = Annotated[float, _ascii_number(_DECIMAL, "a number like 0.5")]


class ProjectionOptions(BaseModel):
    """Which faces are projected, and how: the same photo with the same projection options gives the same
    latents, whatever it is rendered as."""

    face: str = Field("largest", description="largest, all, or the index of a face (0 = largest)",
                      json_schema_extra={"pattern": "^(largest|all|[0-9]{1,2})$"})
    steps: AsciiInt = Field(DEFAULT_STEPS, ge=1, le=STEPS_CEILING,
                       description="projection steps (the original Toonify uses %d)" % DEFAULT_STEPS)
    seed: AsciiInt = Field(0, ge=0, le=2 ** 31 - 1, description="seed of the projection's noise (face k gets seed + k)")

    @field_validator("face")
    @classmethod
    def _face(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("largest", "all") or (_INTEGER.fullmatch(value) and int(value) <= MAX_FACE_INDEX):
            return value
        raise ValueError("face must be 'largest', 'all' or a face index from 0 to %d" % MAX_FACE_INDEX)

    def key(self) -> str:
        """The result cache's key part: equal keys, equal projections."""
        return "face=%s;steps=%d;seed=%d" % (self.face, self.steps, self.seed)


class RenderOptions(BaseModel):
    """How a projection is turned into the image a user gets: re-rendering at other options costs one
    synthesis, not a projection."""

    strength: AsciiFloat = Field(1.0, ge=0.0, le=1.0, description="1.0 = the original Toonify look, 0.0 = the photo")
    output: OutputKind = Field(
        "toon", description="the cartoon face, the photo with the face(s) pasted back, the aligned crop, or the "
                            "FFHQ reconstruction (shows whether the projection found the face)")
    format: Literal["png", "jpeg", "webp"] = Field("png", description="image format of the result")
    style: str = Field(DEFAULT_STYLE, description="the style to render in (GET /styles lists the server's), or "
                                                  "'all': every style, as a ZIP",
                       json_schema_extra={"pattern": "^[a-z0-9][a-z0-9_-]{0,39}$"})

    @field_validator("style", mode="before")
    @classmethod
    def _style(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        value = value.strip().lower()
        if not STYLE_NAME.fullmatch(value):
            raise ValueError("style must be a style name (%s) or '%s'" % (STYLE_NAME_RULE, ALL_STYLES))
        return value

    @property
    def every_style(self) -> bool:
        return self.style == ALL_STYLES

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, value: object) -> object:
        return value.lower().replace("jpg", "jpeg") if isinstance(value, str) else value


class ToonifyOptions(RenderOptions, ProjectionOptions):
    """Both kinds as one request sends them (form fields, CLI options). The bases are listed render first so
    that the fields come projection first (face, steps, seed, strength, output, format), as the API has always
    listed and validated them."""

    @property
    def projection_options(self) -> ProjectionOptions:
        return ProjectionOptions(**self.model_dump(include=set(ProjectionOptions.model_fields)))

    @property
    def render_options(self) -> RenderOptions:
        return RenderOptions(**self.model_dump(include=set(RenderOptions.model_fields)))
