"""Upload leases on a real directory, judged by a clock the test moves."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from regtool.layout.v2 import V2Layout
from regtool.storage.base import Driver
from regtool.storage.local import LocalDriver
from regtool.uploads.lease import Lease, LeaseBusy, LeaseTerms, committed_size

UPLOAD = "0b9e1d3c-0000-4000-8000-000000000000"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Driver, V2Layout, Clock, LeaseTerms]:
    driver = LocalDriver(tmp_path)
    layout = V2Layout(driver)
    clock = Clock()
    return driver, layout, clock, LeaseTerms(ttl=60, clock=clock)


def take(layout: V2Layout, terms: LeaseTerms) -> Lease:
    return Lease.take(layout.driver, partial(layout.upload_lease, "app", UPLOAD), terms, 0)


def test_one_holder_at_a_time(setup: tuple[Driver, V2Layout, Clock, LeaseTerms]) -> None:
    driver, layout, _clock, terms = setup
    first = take(layout, terms)
    assert not first.doubtful and driver.exists(layout.upload_lease("app", UPLOAD))
    with pytest.raises(LeaseBusy):
        take(layout, terms)
    first.release()
    assert not driver.exists(layout.upload_lease("app", UPLOAD))
    second = take(layout, terms)  # free again
    assert not second.doubtful
    second.release()


def test_expired_lease_is_taken_over_by_the_next_generation(
    setup: tuple[Driver, V2Layout, Clock, LeaseTerms],
) -> None:
    driver, layout, clock, terms = setup
    crashed = take(layout, terms)
    clock.now += 61
    with pytest.raises(LeaseBusy):
        crashed.ensure()  # its holder, should it come back, knows it lost
    heir = take(layout, terms)
    assert heir.generation == 1 and heir.doubtful
    with pytest.raises(LeaseBusy):
        take(layout, terms)  # the heir holds it now
    crashed.release()  # lost: releases nothing
    assert driver.exists(layout.upload_lease("app", UPLOAD, 1))
    heir.release()
    again = take(layout, terms)  # generation 0 still expired: 1 is taken again
    assert again.generation == 1 and again.doubtful


def test_renewal_keeps_a_lease_and_its_lapse_loses_it(
    setup: tuple[Driver, V2Layout, Clock, LeaseTerms],
) -> None:
    _driver, layout, clock, terms = setup
    lease = take(layout, terms)
    for _ in range(10):
        clock.now += 29
        lease.renew()
        lease.ensure()
    with pytest.raises(LeaseBusy):
        take(layout, terms)
    clock.now += 31  # no renewal for over half its life: the holder counts it lost
    with pytest.raises(LeaseBusy):
        lease.ensure()
    with pytest.raises(LeaseBusy):
        lease.renew()  # and cannot renew it back to life


def test_check_reads_the_lease_back(setup: tuple[Driver, V2Layout, Clock, LeaseTerms]) -> None:
    """What Swift can do (another create landing over this one) is found by `check`."""
    driver, layout, clock, terms = setup
    lease = take(layout, terms)
    driver.put(lease.path, f"{'cd' * 16} {clock.now + 60:.3f}".encode())
    lease.ensure()  # in memory, nothing tells
    with pytest.raises(LeaseBusy):
        lease.check()
    with pytest.raises(LeaseBusy):
        lease.ensure()  # and it stays lost
    lease.release()
    assert driver.exists(lease.path)  # the other holder's lease is left alone


def test_unreadable_lease_counts_as_expired(
    setup: tuple[Driver, V2Layout, Clock, LeaseTerms],
) -> None:
    driver, layout, _clock, terms = setup
    driver.put(layout.upload_lease("app", UPLOAD), b"garbage\n")
    lease = take(layout, terms)
    assert lease.generation == 1


def test_forsaken_lease_is_not_written_again(
    setup: tuple[Driver, V2Layout, Clock, LeaseTerms],
) -> None:
    """A completed upload is deleted with its lease: neither a late renewal nor the
    release writes or deletes anything after."""
    driver, layout, _clock, terms = setup
    lease = take(layout, terms)
    assert lease.forsake()
    driver.delete(layout.upload_dir("app", UPLOAD))
    with pytest.raises(LeaseBusy):
        lease.renew()
    lease.release()
    assert not driver.exists(layout.upload_dir("app", UPLOAD))


def test_a_lease_records_what_the_upload_holds(
    setup: tuple[Driver, V2Layout, Clock, LeaseTerms],
) -> None:
    """A refused taker learns the size the holder recorded (at its take, then at each
    renewal), not what a stat of the data would show mid-append; with no lease in
    force there is none to learn."""
    driver, layout, _clock, terms = setup
    path_of = partial(layout.upload_lease, "app", UPLOAD)
    holder = Lease.take(driver, path_of, terms, 100)
    with pytest.raises(LeaseBusy) as refused:
        Lease.take(driver, path_of, terms, 999)  # what the other stat showed
    assert refused.value.size == 100 and committed_size(driver, path_of, terms) == 100
    holder.committed = 150
    holder.renew()
    assert committed_size(driver, path_of, terms) == 150
    holder.release()
    assert committed_size(driver, path_of, terms) is None
    # One written without a size (by an earlier version): the taker's own stat is used.
    driver.put(path_of(0), f"{'a' * 32} {terms.clock() + 60:.3f}".encode())
    with pytest.raises(LeaseBusy) as refused:
        Lease.take(driver, path_of, terms, 7)
    assert refused.value.size == 7 and committed_size(driver, path_of, terms) is None
