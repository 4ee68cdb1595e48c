"""Control-plane models. The data plane never imports these; it reads proxy/snapshot.py's output."""

from proxy.models.routing import Route, Target, Upstream

__all__ = ["Route", "Target", "Upstream"]
