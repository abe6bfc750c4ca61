"""Helpers of ``conf.py`` that sphinx-gallery names by import path (so the config pickles)."""


def quick_argv(gallery_conf, script_vars):
    """Run every example of the gallery with ``--quick``, as the tests do."""
    return ["--quick"]
