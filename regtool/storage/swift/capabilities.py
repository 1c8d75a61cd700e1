"""What a Swift cluster's `/info` says regtool must respect.

`GET /info` (Swift's "capabilities", `swift capabilities` on the CLI) publishes the
cluster's constraints and middleware, e.g.

    {"swift": {"container_listing_limit": 10000, "max_file_size": 5368709122, ...},
     "bulk_delete": {"max_deletes_per_request": 10000, ...},
     "slo": {...}, ...}

(see swift/common/constraints.py and each middleware's `register_swift_info`). A cluster
may hide `/info` (`expose_info = false`) or a section of it (`disallowed_sections`);
then Swift's defaults apply, and bulk delete is not used since it may be missing.

Dynamic Large Objects are not listed: Swift's dlo middleware registers nothing in
`/info` (the proxy inserts it into every pipeline), so whether a cluster joins DLO
segments shows only when one is written (see `dlo.SwiftWriter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Swift's defaults (swift/common/constraints.py, swift/common/middleware/bulk.py).
LISTING_LIMIT = 10_000
MAX_FILE_SIZE = 5_368_709_122
BULK_DELETE_LIMIT = 10_000


def _positive(section: Any, key: str, default: int) -> int:
    value = section.get(key) if isinstance(section, Mapping) else None
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    )


@dataclass(frozen=True)
class Capabilities:
    """The limits regtool keeps to on one cluster.

    listing_limit: names a container listing may return per request (at most 10,000).
    max_file_size: bytes an object (a DLO segment) may hold.
    bulk_delete: names a bulk-delete request may carry; 0 if bulk delete is not offered.
    """

    listing_limit: int = LISTING_LIMIT
    max_file_size: int = MAX_FILE_SIZE
    bulk_delete: int = 0

    @classmethod
    def from_info(cls, info: object) -> Capabilities:
        """From the parsed JSON of `/info`; Swift's defaults if `info` is not a mapping
        (no usable `/info`). Values of the wrong type count as absent."""
        if not isinstance(info, Mapping):
            return cls()
        swift = info.get("swift")
        bulk = info.get("bulk_delete")
        return cls(
            listing_limit=min(
                _positive(swift, "container_listing_limit", LISTING_LIMIT), LISTING_LIMIT
            ),
            max_file_size=_positive(swift, "max_file_size", MAX_FILE_SIZE),
            bulk_delete=(
                _positive(bulk, "max_deletes_per_request", BULK_DELETE_LIMIT)
                if isinstance(bulk, Mapping)
                else 0
            ),
        )
