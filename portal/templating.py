"""The portal's Jinja2 templates: filters every page uses, and a renderer for fragments made
outside a request (SSE rows), held by the app (no module-level global)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.status_codes import HTTP_400_BAD_REQUEST
from litestar.template.config import TemplateConfig

from core.progress import STATUS_VALUES
from portal.auth import Viewer
from portal.filenames import display_filename

__all__ = ["TemplateRenderer", "action_result", "template_config"]

TEMPLATES = Path(__file__).parent / "templates"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@jinja2.pass_context
def _current_viewer(context: jinja2.runtime.Context) -> Viewer | None:
    """The logged-in user for the page header; None on public pages such as the login form."""
    request = context.get("request")
    user = request.scope.get("user") if request is not None else None
    return user if isinstance(user, Viewer) else None


def _add_filters(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters["when"] = _when
    engine.engine.filters["filename"] = display_filename
    engine.engine.globals["current_viewer"] = _current_viewer
    engine.engine.globals["video_statuses"] = STATUS_VALUES  # the one status vocabulary


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """One app's template configuration (its own engine, so apps never share one)."""
    return TemplateConfig(
        directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=_add_filters
    )


def action_result(
    message: str, status_code: int, headers: dict[str, str] | None = None
) -> Template:
    """An action button's answer: the ``_action_result.html`` fragment, the same for a success
    and a refusal (4xx/5xx, ``message`` then being its public reason), escaped by Jinja."""
    return Template(
        template_name="_action_result.html",
        context={"message": message, "refused": status_code >= HTTP_400_BAD_REQUEST},
        status_code=status_code,
        headers=headers,
    )


class TemplateRenderer:
    """Renders a template of one app outside a request, with that app's filters."""

    def __init__(self, config: TemplateConfig[JinjaTemplateEngine]) -> None:
        self._config = config

    def render(self, name: str, **context: Any) -> str:
        engine: JinjaTemplateEngine = self._config.engine_instance
        return engine.get_template(name).render(**context)

    def one_line(self, name: str, **context: Any) -> str:
        """SSE data lines cannot hold newlines of their own."""
        return self.render(name, **context).replace("\n", " ")
