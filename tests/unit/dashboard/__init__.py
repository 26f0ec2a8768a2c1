"""Unit tests of ``corral.dashboard``'s server side: file paths, login, the faces' proxy."""
