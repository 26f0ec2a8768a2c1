"""Corral: a lightweight cluster manager with the Kubernetes API and Mesos-style offers."""

__version__ = "0.1.0"
