"""The dead-letter page (admins): messages no flow could use, with their errors."""

from __future__ import annotations

from litestar import get
from litestar.response import Template

from portal import queries
from portal.auth import requires_admin
from portal.deps import Db

__all__ = ["dead_letter_page"]


@get("/dead-letters", guards=[requires_admin], include_in_schema=False)
async def dead_letter_page(db: Db) -> Template:
    """Messages no flow could use, with their errors."""
    letters = await queries.dead_letters(db)
    return Template(template_name="dead_letters.html", context={"letters": letters})
