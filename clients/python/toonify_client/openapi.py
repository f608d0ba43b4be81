"""What a server advertises in its OpenAPI document: the client sends a newer field (a photo by URL) only when
the server documents it, since the server refuses fields it does not know."""
from __future__ import annotations

from typing import Any, Dict, Set

URL_FIELD = "image_url"


def form_fields(spec: Dict[str, Any]) -> Set[str]:
    """The field names of the multipart form of ``POST /toonify``, following a ``$ref`` into the components."""
    body = spec.get("paths", {}).get("/toonify", {}).get("post", {}).get("requestBody", {})
    schema = body.get("content", {}).get("multipart/form-data", {}).get("schema", {})
    ref = str(schema.get("$ref", ""))
    if ref.startswith("#/components/schemas/"):
        schema = spec.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
    return set(schema.get("properties", {}))
