"""Blob uploads in progress as the store holds them (`_uploads/<uuid>/`), below the tools
that share them: the server writes them, and it and gc delete the old ones.

- `lease`: which one writer (a request, a purge) may act on an upload at a time, across
  every process sharing the store;
- `holder`: which process holds a lease, so that one whose holder died on this host is
  over at once;
- `age`: when an upload is old enough to delete (gc's rule, which the server's purging
  follows);
- `purge`: deleting one old upload under its lease, so that no writer loses it mid-way.

Paths come from `layout.v2` alone.
"""
