"""Which feature-net versions a worker serves beside the live one (model selection), from the registry."""

from __future__ import annotations

from stream.config import Settings
from stream.engine.selection import Selection
from stream.registry import Registry, RegistryError


def challenger_versions(registry: Registry, spec: str, live: str) -> list[str]:
    """``spec``: ``v2,v3`` (each must be registered) or ``last:K`` (the K newest registered versions other
    than ``live``). The live version itself is never a challenger."""
    spec = spec.strip()
    if spec.startswith("last:"):
        k = int(spec.split(":", 1)[1])
        others = [e["version"] for e in registry.versions() if e["version"] != live]
        return others[-k:]
    versions = [v.strip() for v in spec.split(",") if v.strip() and v.strip() != live]
    for v in versions:
        registry.show(v)  # RegistryError naming the known versions
    return list(dict.fromkeys(versions))


def selection_from_settings(settings: Settings, registry: Registry, live: str) -> Selection | None:
    """The worker's :class:`Selection`, or None when ``challengers`` is empty (or names none but the live one)."""
    if not settings.challengers.strip():
        return None
    try:
        versions = challenger_versions(registry, settings.challengers, live)
    except RegistryError as exc:
        raise SystemExit(f"eddy worker: challengers={settings.challengers!r}: {exc}") from None
    if not versions:
        return None
    return Selection([registry.load(v) for v in versions], mode=settings.selection, eta=settings.selection_eta,
                     gamma=settings.selection_gamma, loss_scale=settings.selection_loss_scale)
