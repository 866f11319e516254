"""Every module of datadam imports both ways, and no application module hides an exported name.

A package that exports names lazily (``datadam.lazy``) and has a submodule of the same
name as an export gives one where the other was asked for: importing the submodule sets
it as the package's attribute over the function, and a function loaded first is what
``import package.name as m`` then returns. So no submodule may share an exported name.
Each check runs in a fresh interpreter, where nothing was imported before it.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import datadam
import datadam.apps

MODULES = sorted(info.name for info in pkgutil.walk_packages(datadam.apps.__path__, "datadam.apps."))
SUBMODULES = [name for name in MODULES if name.count(".") >= 3]  # datadam.apps.<app>.<module>


def _run(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _both_ways(name: str) -> str:
    """Statements that import ``name`` both ways and check that each gives the module."""
    package, _, leaf = name.rpartition(".")
    return (f"import {name} as m\nassert isinstance(m, ModuleType) and m.__name__ == {name!r}, m\n"
            f"from {package} import {leaf} as n\nassert n is m, n\n")


def test_the_modules_are_found():
    assert {"datadam.apps.nas.architecture_search", "datadam.apps.nas.rank_study",
            "datadam.apps.nas.cli", "datadam.apps.continual.experiment",
            "datadam.apps.continual.cli"} <= set(SUBMODULES)


@pytest.mark.parametrize("package", ["datadam.apps.nas", "datadam.apps.continual"])
def test_no_submodule_shares_an_exported_name(package):
    exports = importlib.import_module(package)._EXPORTS
    leaves = {name.rpartition(".")[2] for name in SUBMODULES if name.startswith(package + ".")}
    assert not leaves & set(exports)


def test_every_module_imports_both_ways_even_after_every_export_is_loaded():
    # datadam.cli first: it loads every application's command module (see the next test)
    _run("from types import ModuleType\nimport datadam.cli\n"
         + "".join(_both_ways(name) for name in SUBMODULES)
         + "import datadam.apps.nas as nas, datadam.apps.continual as continual\n"
           "for package in (nas, continual):\n"
           "    for export in package._EXPORTS:\n"
           "        getattr(package, export)\n"
         + "".join(_both_ways(name) for name in SUBMODULES))


def test_search_and_study_stay_functions_after_every_submodule_is_imported():
    _run("from types import FunctionType\nimport datadam.cli\n"
         + "".join(f"import {name}\n" for name in SUBMODULES)
         + "import datadam.apps.nas as nas\n"
           "assert isinstance(nas.search, FunctionType) and isinstance(nas.study, FunctionType)\n"
           "from datadam.apps.nas import search, study\n"
           "assert search is nas.search and study is nas.study\n"
           "assert (search.__module__, study.__module__) == "
           "('datadam.apps.nas.architecture_search', 'datadam.apps.nas.rank_study')\n")


@pytest.mark.parametrize("name", [name for name in SUBMODULES if name.endswith(".cli")])
def test_a_command_module_imports_first(name):
    # the root command is built lazily, so an application's command module can come first
    _run("from types import ModuleType\n" + _both_ways(name))


CORE = sorted(info.name for info in pkgutil.walk_packages(datadam.__path__, "datadam.")
              if not info.name.startswith("datadam.apps"))


def test_every_core_module_imports_both_ways():
    assert {"datadam.records", "datadam.kernels", "datadam.evaluate.runner", "datadam.cli.root",
            "datadam.distill.matching"} <= set(CORE)
    _run("from types import ModuleType\n" + "".join(_both_ways(name) for name in CORE))


@pytest.mark.parametrize("name", CORE)
def test_a_core_module_imports_first(name):
    _run("from types import ModuleType\n" + _both_ways(name))
