"""Corral: a lightweight cluster manager with the Kubernetes API and Mesos-style offers."""

from corral import native

__version__ = "0.1.0"

native.guard()  # the compiled modules only from a build of these sources (native.py)
