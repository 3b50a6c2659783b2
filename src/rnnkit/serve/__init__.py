"""Serving trained models over HTTP: ``rnnkit serve`` and :func:`create_app`."""

from rnnkit.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
