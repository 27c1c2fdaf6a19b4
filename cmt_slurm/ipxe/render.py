"""Render a boot context into a whole iPXE script. Pure: context in, text out (templates are read-only data).

One template per mode (``<mode>.ipxe.j2``) in ``cmt_slurm/ipxe/templates``; an operator directory
(``template_dir`` in cmt.toml) is searched first, so a file there overrides the shipped one of the same
name, including the shared ``_retry.ipxe.j2`` and ``_failed.ipxe.j2``. Jinja2 runs sandboxed with
``StrictUndefined``: a template using a variable its context does not provide fails to render instead
of printing an empty string. The script is rendered completely before anything is sent.
"""

from __future__ import annotations

import functools
from pathlib import Path

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from ..errors import ConfigError
from .context import BootContext

SHIPPED_TEMPLATES = Path(__file__).resolve().parent / "templates"
_HINT = "templates may use only the variables their context's docstring lists (cmt_slurm/ipxe/context.py)"


class IpxeRenderer:
    """Holds one Jinja2 environment (compiled templates are cached; edited files are reloaded)."""

    def __init__(self, template_dir: Path | None = None):
        loaders: list[FileSystemLoader] = []
        if template_dir is not None:
            if not Path(template_dir).is_dir():
                raise ConfigError(
                    f"template_dir: {template_dir} is not a directory",
                    hint="create it, or unset template_dir to use the shipped iPXE templates",
                )
            loaders.append(FileSystemLoader(str(template_dir)))
        loaders.append(FileSystemLoader(str(SHIPPED_TEMPLATES)))
        self.template_dir = template_dir
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=True,
        )

    def render(self, ctx: BootContext) -> str:
        """The script for ``ctx``.

        :raises ConfigError: the template is missing, does not parse, uses an unknown variable or
            something the sandbox forbids, or does not produce an iPXE script.
        """
        name = ctx.template
        try:
            text = self.env.get_template(name).render(**ctx.variables())
        except TemplateNotFound as exc:
            raise ConfigError(
                f"iPXE template {exc.name} not found",
                hint=f"the shipped templates are in {SHIPPED_TEMPLATES}",
            ) from None
        except TemplateSyntaxError as exc:
            raise ConfigError(
                f"iPXE template {exc.filename or exc.name}:{exc.lineno}: {exc.message}",
                hint="fix the Jinja2 syntax at that line",
            ) from None
        except UndefinedError as exc:
            raise ConfigError(f"iPXE template {name}: {exc.message}", hint=_HINT) from None
        except SecurityError as exc:
            raise ConfigError(f"iPXE template {name}: refused by the sandbox: {exc}", hint=_HINT) from None
        except TemplateError as exc:
            raise ConfigError(f"iPXE template {name}: {exc}", hint=_HINT) from None
        if not text.startswith("#!ipxe\n"):
            raise ConfigError(
                f"iPXE template {name}: output does not start with '#!ipxe'",
                hint="the first line of every template must be #!ipxe",
            )
        if "\r" in text:
            raise ConfigError(
                f"iPXE template {name}: output contains a carriage return", hint="save it with LF"
            )
        return text


@functools.lru_cache(maxsize=8)
def _renderer(template_dir: Path | None) -> IpxeRenderer:
    return IpxeRenderer(template_dir)


def render_ipxe(ctx: BootContext, template_dir: Path | None = None) -> str:
    """Render ``ctx`` with the shipped templates, overridden by those in ``template_dir``.

    Keeps one renderer per directory (templates compile once; Jinja2 reloads files that change), so the
    boot endpoint can call this per request.

    :raises ConfigError: see :meth:`IpxeRenderer.render`.
    """
    return _renderer(Path(template_dir) if template_dir is not None else None).render(ctx)
