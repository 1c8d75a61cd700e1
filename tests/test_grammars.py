"""Every grammar regtool checks input against is ASCII-exact and matched whole, as
distribution's Go regexps are: Python's `\\w` and `\\d` take any Unicode letter or digit,
`int()` takes other scripts' digits, and `$` also matches before a final newline.

Each grammar is fed text mixing its own alphabet with Unicode letters and digits, control
characters and newlines, and must agree with a plain oracle written without regexps;
a valid example with a newline appended must be refused; and examples that must be
accepted are.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.requests import Request

from regtool.cli.duration_option import parse_duration
from regtool.cli.serve import parse_addr
from regtool.durations import MAX_DURATION
from regtool.errors import DigestInvalid, InvalidPath, LocationError, NameInvalid, UsageError
from regtool.layout.segments import segment_sets
from regtool.layout.v1 import CorruptImage, check_image_id
from regtool.layout.v2 import V2Layout
from regtool.location import parse_location
from regtool.oci import Digest, check_name, check_tag
from regtool.server.blobs import RangeNotSatisfiable, parse_range
from regtool.server.errors import BlobUploadInvalid, BlobUploadUnknown, SizeInvalid
from regtool.server.http import parse_number
from regtool.server.upload_store import UploadStore
from regtool.server.uploads import chunk_range
from regtool.storage.base import Entry, check_path
from regtool.storage.local import LocalDriver
from regtool.yamldoc import YAMLError, load_yaml

LOWER, DIGITS, HEX = string.ascii_lowercase, string.digits, "0123456789abcdef"
ALNUM = string.ascii_letters + DIGITS

#: What Python's regexps and int() take beyond ASCII, and what must never pass.
UNICODE = st.characters(categories=["L", "Nd", "Nl", "No"]).filter(lambda c: not c.isascii())
CONTROL = st.sampled_from([chr(c) for c in range(32)] + ["\x7f", "\x85", "\u2028"])


def mixed(alphabet: str, max_size: int = 40) -> st.SearchStrategy[str]:
    """Text mostly from `alphabet`, with Unicode letters/digits and control characters."""
    return st.text(
        st.one_of(st.sampled_from(alphabet), st.sampled_from(alphabet), UNICODE, CONTROL),
        max_size=max_size,
    )


def accepts(check: Callable[[str], object], text: str, *errors: type[BaseException]) -> bool:
    try:
        check(text)
    except errors:
        return False
    return True


# --- oracles: the grammars spelled out character by character -------------------------
def is_tag(text: str) -> bool:
    return 0 < len(text) <= 128 and text[0] in ALNUM + "_" and all(c in ALNUM + "_.-" for c in text)


def is_component(text: str) -> bool:
    if not text or text[0] not in LOWER + DIGITS or text[-1] not in LOWER + DIGITS:
        return False
    if any(c not in LOWER + DIGITS + "._-" for c in text):
        return False
    runs, run = [], ""
    for c in text:
        if c in "._-":
            run += c
        elif run:
            runs.append(run)
            run = ""
    return all(r in (".", "_", "__") or set(r) == {"-"} for r in runs)


def is_name(text: str) -> bool:
    return len(text) <= 255 and all(is_component(c) for c in text.split("/"))


def is_digest(text: str) -> bool:
    alg, sep, hexpart = text.partition(":")
    lengths = {"sha256": 64, "sha512": 128}
    return (
        bool(sep)
        and alg in lengths
        and len(hexpart) == lengths[alg]
        and all(c in HEX for c in hexpart)
    )


def is_duration(text: str) -> bool:
    if text == "0":
        return True
    rest = text
    while rest:
        digits = len(rest) - len(rest.lstrip(DIGITS))
        if digits == 0:
            return False
        rest = rest[digits:]
        if rest.startswith("."):
            frac = len(rest[1:]) - len(rest[1:].lstrip(DIGITS))
            if frac == 0:
                return False
            rest = rest[1 + frac :]
        if not rest or rest[0] not in "smhdwSMHDW":
            return False
        rest = rest[1:]
    return bool(text) and _duration_seconds(text) <= MAX_DURATION.total_seconds()


def _duration_seconds(text: str) -> float:
    """The seconds of a duration of the grammar above, the way a person counts them."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    seconds, number = 0.0, ""
    for c in text.lower():
        if c in units:
            seconds, number = seconds + float(number) * units[c], ""
        else:
            number += c
    return seconds


def is_number(text: str) -> bool:
    return 0 < len(text) <= 18 and all(c in DIGITS for c in text)


# --- oci.py ------------------------------------------------------------------------------
@given(mixed(ALNUM + "_.-", 140))
@example("t\u00e4g")
@example("\u0661\u0662")
@example("v1\n")
@example("v1\r\n")
def test_tag_grammar(text: str) -> None:
    assert accepts(check_tag, text, NameInvalid) == is_tag(text)


@given(mixed(LOWER + DIGITS + "._-/", 60))
@example("caf\u00e9/app")
@example("app\n")
@example("a/b\n")
@example("\uff41pp")
def test_name_grammar(text: str) -> None:
    assert accepts(check_name, text, NameInvalid) == is_name(text)


@given(st.sampled_from(["sha256:", "sha512:", "sha256", "md5:"]), mixed(HEX, 130))
@example("sha256:", "a" * 64 + "\n")
@example("sha256:", "a" * 63 + "\u0663")
def test_digest_grammar(prefix: str, hexpart: str) -> None:
    text = prefix + hexpart
    assert accepts(Digest.parse, text, DigestInvalid) == is_digest(text)


def test_grammar_examples_accepted() -> None:
    for tag in ["latest", "v1.0", "1.0-rc_2", "_x", "A" * 128]:
        assert check_tag(tag) == tag
    for name in ["a", "library/app", "a-b_c.d", "a__b", "a---b", "x/y/z", "0/1"]:
        assert check_name(name) == name
    for text in ["sha256:" + "0a" * 32, "sha512:" + "f" * 128]:
        assert str(Digest.parse(text)) == text


# --- layout and storage ------------------------------------------------------------------
@given(mixed(HEX, 70))
@example("a" * 16 + "\n")
@example("a" * 15 + "\u0663")
def test_v1_image_id_grammar(text: str) -> None:
    expected = len(text) in (16, 64) and all(c in HEX for c in text)
    assert accepts(check_image_id, text, CorruptImage) == expected


@given(mixed(HEX + "/", 8), mixed(HEX, 10), mixed(DIGITS, 18))
@example("abc", "def0", "0" * 15 + "1\n")
@example("abc", "def0", "0" * 15 + "\u0661")
def test_segment_name_grammar(first: str, rest: str, number: str) -> None:
    tail = f"{first}/{rest}/{number}"
    found = segment_sets("segments", [Entry(f"segments/{tail}", size=1)])
    expected = (
        len(first) == 3
        and all(c in HEX for c in first)
        and len(rest) > 0
        and all(c in HEX for c in rest)
        and len(number) == 16
        and all(c in DIGITS for c in number)
    )
    assert bool(found) == expected


@given(st.lists(mixed("ab.", 4), min_size=1, max_size=5))
@example(["a", ".\n"])
@example(["a", "..\n"])
@example(["a", "\n"])
@example(["a", ".."])
def test_driver_path_grammar(segments: list[str]) -> None:
    """A path is refused exactly when a segment is empty, `.` or `..` (or it holds `\\`
    or NUL): `..\\n` is a name like any other, not `..` before a line end."""
    path = "/".join(segments)
    expected = all(s not in ("", ".", "..") for s in segments) and not (
        "\\" in path or "\x00" in path
    )
    assert accepts(check_path, path, InvalidPath) == expected


# --- the CLI's arguments ---------------------------------------------------------------
@given(mixed(DIGITS + ".smhdwSMHDW", 12))
@example("1h\n")
@example("\u0661h")
@example("1\u017f")
def test_duration_grammar(text: str) -> None:
    assert accepts(parse_duration, text, typer.BadParameter) == is_duration(text)


def test_duration_examples_accepted() -> None:
    assert parse_duration("36500d") == MAX_DURATION
    assert not accepts(parse_duration, "36500d1s", typer.BadParameter)
    assert parse_duration("0").total_seconds() == 0
    assert parse_duration("1h30m").total_seconds() == 5400
    assert parse_duration("1.5H").total_seconds() == 5400


@given(mixed(DIGITS, 7))
@example("5000\n")
@example("\u0665\u0660\u0660\u0660")
@example("+80")
def test_port_grammars(port: str) -> None:
    """A port in `serve --addr` and in an sftp:// LOCATION: 1 to 65535, ASCII digits."""
    expected = 0 < len(port) <= 5 and all(c in DIGITS for c in port) and 0 < int(port) < 65536
    assert accepts(parse_addr, f"127.0.0.1:{port}", UsageError) == expected
    assert accepts(parse_location, f"sftp://user@host:{port}/srv", LocationError) == expected


@pytest.fixture(scope="session")
def swift_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "config.yml"
    path.write_text(
        "storage:\n  swift:\n    authurl: https://swift.example/auth/v1.0\n"
        "    username: u\n    password: p\n    container: c\n"
    )
    return path


@given(text=mixed(DIGITS, 20))
@example(text="5242880\n")
@example(text="\u0665")
def test_swift_chunksize_grammar(swift_config: Path, text: str) -> None:
    """`storage.swift.chunksize` of a distribution config, here from distribution's
    environment override: its value is YAML (`5242880\n` is the number), a positive
    whole number, or text of ASCII digits (the driver's weak typing takes `"5242880"`)."""
    env = {"REGISTRY_STORAGE_SWIFT_CHUNKSIZE": text}
    found = accepts(
        lambda t: parse_location(None, config=swift_config, env=env), text, LocationError
    )
    try:
        value = load_yaml(text)
    except YAMLError:
        value = []
    if isinstance(value, str) and is_number(value):
        value = int(value)
    whole = isinstance(value, int) and not isinstance(value, bool)
    assert found == (value is None or (whole and value > 0))


def test_location_refuses_control_characters_urlsplit_would_drop() -> None:
    for text in ["sftp://host:22\n/srv", "sftp://ho\tst/srv", "swift://cont\nainer"]:
        with pytest.raises(LocationError, match="control character"):
            parse_location(text)
    assert parse_location("sftp://user@host:2222/srv").port == 2222
    assert parse_location("sftp://[::1]:22/srv").host == "::1"


def test_addr_examples() -> None:
    assert parse_addr("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert parse_addr(":5000") == ("0.0.0.0", 5000)
    assert parse_addr("[::1]:80") == ("::1", 80)
    assert parse_addr("localhost:1") == ("localhost", 1)
    for bad in ["localhost", "host:0", "h\u00f6 st:80", "host\n:80", "[::1:80", "a:b:80"]:
        with pytest.raises(UsageError):
            parse_addr(bad)


# --- the server's headers and ids ----------------------------------------------------------
@given(mixed(DIGITS, 22))
@example("12\n")
@example("\u0661\u0662")
@example("1_000")
@example(" 12")
def test_number_grammar(text: str) -> None:
    assert (parse_number(text) is not None) == is_number(text)


def _request(**headers: str) -> Request:
    raw = [(k.replace("_", "-").encode(), v.encode("latin-1")) for k, v in headers.items()]
    return Request({"type": "http", "method": "PATCH", "headers": raw, "query_string": b""})


@given(mixed(DIGITS, 6), mixed(DIGITS, 6))
@example("0", "9\n")
@example("0", "\u0669")
def test_content_range_grammar(start: str, end: str) -> None:
    text = f"{start}-{end}"
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return  # not a header value any client can send
    start, end = start.lstrip(" \t"), end.rstrip(" \t")  # optional whitespace (RFC 9110 5.5)
    expected = is_number(start) and is_number(end) and int(end) >= int(start)
    assert accepts(lambda t: chunk_range(_request(content_range=t)), text, BlobUploadInvalid) == (
        expected
    )


def test_content_range_examples() -> None:
    assert chunk_range(_request(content_range="0-99")) == (0, 100)
    assert chunk_range(_request(content_range="bytes 100-199/*")) == (100, 100)
    assert chunk_range(_request(content_range="5-5", content_length="1")) == (5, 1)
    assert chunk_range(_request()) is None
    with pytest.raises(SizeInvalid):
        chunk_range(_request(content_range="0-99", content_length="10"))


@given(mixed(DIGITS + "-", 8))
@example("0-4\n")
@example("\u0660-4")
@example("-\u0664")
def test_range_grammar(spec: str) -> None:
    """A Range that is not `bytes=<digits>-<digits>` (either may be empty, not both) is
    ignored (None: the whole blob), never read through int()'s Unicode digits."""
    first, sep, last = spec.rstrip(" \t").partition("-")  # optional whitespace at the end
    well_formed = (
        sep == "-"
        and all(c in DIGITS for c in first + last)
        and len(first) <= 18
        and len(last) <= 18
        and bool(first or last)
    )
    try:
        span = parse_range(f"bytes={spec}", 1000)
    except RangeNotSatisfiable:
        assert well_formed
        return
    assert (span is not None) == well_formed


def test_range_examples() -> None:
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("BYTES=90-", 100) == (90, 99)
    assert parse_range("bytes=-5", 100) == (95, 99)
    assert parse_range("bytes=-5", 0) is None
    assert parse_range("bytes=0-1,5-6", 100) is None
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=100-", 100)


class _Watched(LocalDriver):
    """Records whether storage was asked anything."""

    asked = False

    def exists(self, path: str) -> bool:
        self.asked = True
        return super().exists(path)


@given(st.lists(mixed(HEX, 12), min_size=5, max_size=5))
@example(["0b9e1d3c", "0000", "4000", "8000", "000000000000\n"])
@example(["0b9e1d3c", "0000", "4000", "8000", "00000000000\u0660"])
@example(["0b9e1d3c", "0000", "4000", "8000", "000000000000"])
def test_upload_id_grammar(parts: list[str]) -> None:
    """An upload id that is not a lowercase UUID is unknown before storage is asked."""
    upload_id = "-".join(parts)
    expected = [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(
        c in HEX for c in upload_id.replace("-", "")
    )
    driver = _Watched("/nonexistent-regtool-store")
    with pytest.raises(BlobUploadUnknown):
        UploadStore(V2Layout(driver)).size("app", upload_id)
    assert driver.asked == expected


def test_upload_id_example(tmp_path: Path) -> None:
    store = UploadStore(V2Layout(LocalDriver(tmp_path)))
    upload_id = store.start("app")
    assert store.size("app", upload_id) == 0
    with pytest.raises(BlobUploadUnknown):
        store.size("app", upload_id + "\n")
