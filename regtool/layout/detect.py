"""Finding which registry layout a location holds, with a listing or two."""

from __future__ import annotations

from regtool.errors import LayoutError
from regtool.layout.v1 import V1Layout
from regtool.layout.v2 import FILESYSTEM_ROOT, SWIFT_ROOT, V2Layout
from regtool.storage.base import Driver, join

Layout = V2Layout | V1Layout

#: Directory names the V1 registry was commonly configured with as `storage_path`.
_V1_PREFIX_HINTS = ("docker-registry", "registry")
_MAX_SUBDIRS_PROBED = 8


def default_layout(driver: Driver) -> V2Layout:
    """The layout a new store gets: distribution's naming for the backend."""
    return V2Layout(driver, SWIFT_ROOT if driver.name == "swift" else FILESYSTEM_ROOT)


def v2_destination(driver: Driver) -> V2Layout:
    """Where V2 images go in the store at the driver's root: distribution's tree there if
    it has one, else a new one with the backend's naming (`default_layout`), beside
    whatever else the store holds (a V1 store under `docker-registry/`, say)."""
    found = _layout_at(driver, "", _names(driver, ""))
    return found if isinstance(found, V2Layout) else default_layout(driver)


def detect_layout(driver: Driver) -> Layout:
    """The layout at the driver's root, or a V1 store one directory down (a V1
    `storage_path` such as `docker-registry/`). An empty store is a new V2 store.
    `LayoutError` otherwise, also for distribution's tree one directory down: a
    container or directory may hold several registries side by side (distribution's
    `prefix`), and a V2 store's segments and uploads are found from the location's root,
    so its path must be given."""
    top = _names(driver, "")
    if not top:
        return default_layout(driver)
    found = _layout_at(driver, "", top)
    if found is not None:
        return found
    subdirs = sorted(
        (n for n, is_dir in top.items() if is_dir),
        key=lambda n: (n not in _V1_PREFIX_HINTS, n),
    )[:_MAX_SUBDIRS_PROBED]
    nested: list[str] = []
    for sub in subdirs:
        found = _layout_at(driver, sub, _names(driver, sub))
        if isinstance(found, V1Layout):
            return found
        if found is not None:
            nested.append(sub)
    if nested:
        where, first = ", ".join(f"{n}/" for n in sorted(nested)), min(nested)
        raise LayoutError(
            f"{driver.describe()} holds no registry at its top, but distribution's tree lies "
            f"under {where}: give that path in the LOCATION ({driver.describe()}/{first})"
        )
    shown = ", ".join(sorted(top)[:10])
    raise LayoutError(
        f"{driver.describe()} holds no registry: expected docker/registry/v2/ (distribution), "
        f"files/docker/registry/v2/ (distribution on Swift) or repositories/ + images/ "
        f"(V1 docker-registry); found: {shown}"
    )


def find_v1_layout(driver: Driver) -> V1Layout | None:
    """The V1 tree at the driver's root or one directory down, whatever V2 tree lies
    beside it (a store migrated in place holds both: `detect_layout` sees the V2 one);
    None when there is none."""
    top = _names(driver, "")
    if _is_v1(top):
        return V1Layout(driver, "")
    subdirs = sorted(
        (n for n, is_dir in top.items() if is_dir),
        key=lambda n: (n not in _V1_PREFIX_HINTS, n),
    )[:_MAX_SUBDIRS_PROBED]
    for sub in subdirs:
        if _is_v1(_names(driver, sub)):
            return V1Layout(driver, sub)
    return None


def _is_v1(names: dict[str, bool]) -> bool:
    # distribution's v2 directory has repositories/ too, always beside blobs/
    return bool(names.get("images") or names.get("repositories")) and not names.get("blobs")


def _names(driver: Driver, prefix: str) -> dict[str, bool]:
    try:
        return {e.name: e.is_dir for e in driver.list(prefix)}
    except FileNotFoundError:
        return {}


def _layout_at(driver: Driver, base: str, names: dict[str, bool]) -> Layout | None:
    if names.get("docker") and _names(driver, join(base, "docker/registry/v2")):
        return V2Layout(driver, join(base, FILESYSTEM_ROOT))
    if names.get("files") and _names(driver, join(base, SWIFT_ROOT)):
        return V2Layout(driver, join(base, SWIFT_ROOT))
    if names.get("blobs"):  # pointed straight at a v2 directory
        return V2Layout(driver, base)
    if names.get("images") or names.get("repositories"):
        return V1Layout(driver, base)
    return None
