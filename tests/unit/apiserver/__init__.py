"""Unit tests of ``corral.apiserver``: a package so that its ``conftest.py`` does not take
the module name ``conftest`` that integration tests import helpers from."""
