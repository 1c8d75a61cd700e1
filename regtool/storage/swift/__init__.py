"""The OpenStack Swift driver (python-swiftclient), one module per concern:

    driver.py        SwiftDriver: the `Driver` contract over the modules below
    dlo.py           large objects (DLOs) as distribution's Swift driver writes them
    container.py     the objects of one container below a prefix: listing pages, HEAD,
                     GET, PUT, COPY, DELETE, bulk delete; driver paths <-> object names
    reader.py        streaming an object's body
    session.py       login, a connection per thread, the request count, `/info`
    capabilities.py  the cluster's limits from `/info`, or Swift's defaults
    keystone.py      Keystone v2/v3 login
    errors.py        swiftclient / requests / urllib3 errors -> regtool's
    credentials.py   SwiftCredentials

Each module uses the others only through their public names.
"""

from regtool.storage.swift.credentials import SwiftCredentials
from regtool.storage.swift.driver import SwiftDriver

__all__ = ["SwiftCredentials", "SwiftDriver"]
