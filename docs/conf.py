"""Sphinx configuration: ``python -m sphinx -W -b html docs docs/_build/html``.

The guide pages are Markdown (MyST), so they read the same on GitHub; the API reference
is generated from the numpydoc docstrings (autosummary); the examples become a gallery
(sphinx-gallery runs each one with ``--quick`` and shows its printout and plot). Every
code block of the guide pages is run by ``tests/test_docs.py``, not here.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # gallery.py
os.environ.setdefault("MPLBACKEND", "Agg")

import numba_rmsprop  # noqa: E402

project = "numba-rmsprop"
author = "the numba-rmsprop developers"
copyright = "2026, " + author
release = version = numba_rmsprop.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

sphinx_gallery_conf = {
    "examples_dirs": os.path.join(ROOT, "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/(?!gpu\.py$)[^/]+$",  # run every example but the GPU one
    "reset_argv": "gallery.quick_argv",
    "plot_gallery": "True",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "write_computation_times": False,
}

html_theme = "pydata_sphinx_theme"
html_title = "numba-rmsprop"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
