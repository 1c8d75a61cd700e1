"""`regtool verify [TARGET...] [--all] [--blobs] [--quick]`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from regtool.cli.errors import EXIT_PROBLEMS, EXIT_USAGE
from regtool.cli.output import (
    error,
    human_size,
    plural,
    print_json,
    print_table,
    stderr_is_terminal,
    warn,
)
from regtool.cli.progress import ByteBar
from regtool.cli.store import (
    ConfigOption,
    IdentityOption,
    JobsOption,
    JsonOption,
    LocationOption,
    open_store,
)
from regtool.concurrency import DEFAULT_JOBS
from regtool.inspect.verify import Progress, Verification, short, verify_registry


def verify(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="TARGET...",
            help="name:tag, name@digest or a repository (V1: library/ is implied).",
            show_default=False,
        ),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every tag of every repository, and every link file.")
    ] = False,
    blobs: Annotated[
        bool,
        typer.Option("--blobs", help="Also re-hash every blob in storage, referenced or not."),
    ] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="Existence and sizes only, no re-hashing.")
    ] = False,
    location: LocationOption = None,
    config: ConfigOption = None,
    identity: IdentityOption = None,
    as_json: JsonOption = False,
    jobs: JobsOption = DEFAULT_JOBS,
) -> None:
    """Check that images are whole: links, manifests, blob sizes and content hashes.

    A storage fault that outlasts the retries (a timeout, a dropped connection,
    throttling) is not damage: the object is listed with status `error` and the run goes
    on; storage that cannot be reached at all, or refuses the credentials, stops the run.
    Exit 0 when everything checked is whole, 1 when damage was found, 2 when something
    could not be read (the check is incomplete) or on usage and access errors."""
    progress = _RichProgress() if stderr_is_terminal() else None
    with open_store(location, config, identity) as store:
        try:
            verification = verify_registry(
                store.layout,
                store.location.redacted(),
                targets or [],
                everything=everything,
                blobs=blobs,
                quick=quick,
                jobs=jobs,
                progress=progress,
            )
        finally:
            if progress is not None:
                progress.stop()
    for message in verification.warnings:
        warn(message)
    if as_json:
        print_json(verification_document(verification))
    else:
        print_verification(verification)
    if verification.faults:
        count = plural(len(verification.faults), "object")
        error(f"{count} could not be read (status error above): the check is incomplete")
        raise typer.Exit(EXIT_USAGE)
    if verification.problems:
        raise typer.Exit(EXIT_PROBLEMS)


class _RichProgress(ByteBar):
    """Bytes hashed of the total, rate and ETA on stderr."""

    def __init__(self) -> None:
        super().__init__("verifying")

    def expect(self, nbytes: int) -> None:
        self.add_total(nbytes)


_: type[Progress] = _RichProgress  # it satisfies the tool's progress protocol


def verification_document(v: Verification) -> dict[str, Any]:
    """The stable `--json` shape, documented in the README."""
    ref_key = "digest" if v.layout == "v2" else "image_id"
    return {
        "location": v.location,
        "layout": v.layout,
        "results": [
            {
                "repository": r.repository,
                "tag": r.tag,
                ref_key: r.digest if v.layout == "v2" else r.image_id,
                "status": r.status,
                "problems": [
                    {"object": p.object, "kind": p.kind, "detail": p.detail} for p in r.problems
                ],
            }
            for r in v.results
        ],
        "totals": {
            "results": len(v.results),
            "ok": v.count("ok"),
            "corrupt": v.count("corrupt"),
            "missing": v.count("missing"),
            "skipped": v.count("skipped"),
            "error": v.count("error"),
            "leftover": v.count("leftover"),
            "images": v.images,
            "blobs": v.blobs,
            "bytes_hashed": v.bytes_hashed,
            "seconds": round(v.seconds, 3),
            "problems": len(v.problems),
            "unreadable": len(v.faults),
        },
        "warnings": v.warnings,
    }


def print_verification(v: Verification) -> None:
    rows: list[list[str]] = []
    for r in v.results:
        ref = r.digest or r.image_id
        head = [r.repository or "-", r.tag or "-"]
        if not r.problems:
            rows.append([*head, r.status, short(ref) if ref else "-", "-"])
        for i, p in enumerate(r.problems):
            rows.append([*(head if i == 0 else ["", ""]), p.status, short(p.object), p.detail])
    if rows:
        print_table(rows, ["REPOSITORY", "TAG", "STATUS", "OBJECT", "PROBLEM"])
        typer.echo()
    else:
        typer.echo(f"Nothing to verify in {v.location} ({v.layout} layout).")
    counts = ", ".join(
        f"{v.count(s)} {s}"
        for s in ("ok", "corrupt", "missing", "error", "skipped", "leftover")
        if v.count(s)
    )
    rate = human_size(int(v.bytes_hashed / v.seconds)) + "/s" if v.seconds > 0 else "-"
    unread = f"; {plural(len(v.faults), 'object')} unreadable" if v.faults else ""
    typer.echo(
        f"{plural(len(v.results), 'result')} ({counts or 'none'}); "
        f"{plural(v.images, 'image')}, {plural(v.blobs, 'blob')} checked; "
        f"{human_size(v.bytes_hashed)} hashed in {v.seconds:.1f} s ({rate}); "
        + (plural(len(v.problems), "problem") if v.problems else "no problems")
        + unread
        + (" (quick: sizes only, nothing re-hashed)" if v.quick else "")
    )
