"""The ``datadam`` command line: a thin Typer layer over the Python API.

Errors the API raises on purpose (:class:`~datadam.errors.DatadamError`) become one
line on stderr and exit status 1; a usage error exits 2 (Typer's convention). Its
warnings (:class:`~datadam.errors.DatadamWarning`) become one ``warning: ...`` line.

Applications add their own command groups through the ``datadam.commands`` entry-point
group (name -> a :class:`typer.Typer` group or a command function), so the core never
imports an application.
"""

from datadam.lazy import lazy_exports

# The root command is built on first use, not when the package is imported: an
# application's command module imports ``datadam.cli.options``, and building the root
# loads every application's command module; imported first, such a module would be asked
# for its command while it is still half-initialised.
__getattr__, __dir__ = lazy_exports(__name__, {"app": "root", "main": "root"})

__all__ = ["app", "main"]
