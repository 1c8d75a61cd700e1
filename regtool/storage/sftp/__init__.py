"""The SFTP storage driver (paramiko): a directory on an SFTP server.

Modules, from the wire up:

    deferred.py      what paramiko imports and regtool never uses, loaded on first use
    protocol.py      the paramiko boundary: SFTP channel, error statuses, request pipeline
    capabilities.py  what the server announced (extensions, limits), how it renames
    errors.py        native errors as regtool's StorageErrors (a lost connection: transient),
                     said in words
    login.py         SSH login, host keys, what ended a connection (a drop while logging in)
    connection.py    the connection, reconnected when it drops, and its pool of channels
    transfer.py      pipelined reads and writes on an open file; copying a file
    walk.py          listing a tree, every known directory's requests in flight at once,
                     going on where it was on a new connection
    reads.py         reading many small files, every file's requests in flight at once
    batches.py       the small reads threads ask for at once, read as one batch
    files.py         whole-file operations: makedirs, move, create-if-absent
    streams.py       the streaming reader and writer
    driver.py        the Driver contract
"""

from regtool.storage.sftp import deferred  # noqa: F401 - before paramiko is imported
from regtool.storage.sftp.driver import SftpDriver

__all__ = ["SftpDriver"]
