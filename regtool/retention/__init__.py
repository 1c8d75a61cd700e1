"""`regtool rm` and `regtool prune`: deleting tags and manifests from storage, by name or
by policy, on a stopped or a serving registry (a tool, like gc: returns data, prints
nothing).

Semantics (V2):
- A rule covers the tags of the repositories its globs match whose names match its tag
  regexes (all when none). It *keeps* a covered tag that `keep_tags` matches, that is
  among the `keep_last` most recently pushed of the covered tags (`keep_tags` ones not
  counted), that was pushed within `keep_pushed_within`, or pulled within
  `keep_pulled_within`. It *condemns* a covered tag it does not keep if it bounds what it
  keeps (by count or age) and the tag is older than `delete_older_than` (when given).
- A tag is deleted when some rule condemns it and no rule keeps it: a tag is kept if any
  keep clause of any rule keeps it. A tag whose link cannot be read, or whose push time
  is unknown, is kept.
- Push time is when the tag's `current/link` was last written: its modification time in
  the listing (local, SFTP: mtime; Swift: `last_modified`). distribution and `regtool
  serve` write it on every push of the tag, also of the same manifest.
- A manifest a deleted tag named is deleted with it (revision link and history entries,
  as distribution's `DELETE /v2/<name>/manifests/<digest>`), and so are the children of a
  deleted index and the referrers of a deleted manifest (unless `keep_referrers`). With
  `delete_untagged`, manifests no tag names go too.
- Never deleted while something kept needs it: a manifest a kept tag names, a child of a
  kept index, a referrer whose subject is kept; untagged manifests without
  `delete_untagged`. A repository in which a kept tag link or a manifest cannot be read
  loses tags only, no manifest.
- Blob data goes only by gc (`prune --gc`); a dry run estimates what gc would free.
- While serving: see `apply_v2` (compare and delete; re-check before manifests go).

V1 stores: tags only (`tag_<tag>`, `tag<tag>_json`); gc deletes the images left.
"""

from __future__ import annotations

from regtool.retention.apply_v2 import Hooks
from regtool.retention.model import (
    CHANGED,
    DELETED,
    FAILED,
    ManifestDecision,
    RepositoryPlan,
    RetentionResult,
    TagDecision,
)
from regtool.retention.policy import Policy, PolicyError, Rule, load_policy, make_rule
from regtool.retention.run import RetentionOptions, run_retention
from regtool.retention.select import PolicySelector, ReferenceSelector, parse_reference

__all__ = [
    "CHANGED",
    "DELETED",
    "FAILED",
    "Hooks",
    "ManifestDecision",
    "Policy",
    "PolicyError",
    "PolicySelector",
    "ReferenceSelector",
    "RepositoryPlan",
    "RetentionOptions",
    "RetentionResult",
    "Rule",
    "TagDecision",
    "load_policy",
    "make_rule",
    "parse_reference",
    "run_retention",
]
