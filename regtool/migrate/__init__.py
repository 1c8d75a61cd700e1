"""`regtool migrate`: V1 (`docker-registry`) images converted into distribution's V2
layout, in storage, written through the same `layout/` functions `regtool serve` uses.

    chains.py     a V1 tag -> its images, base first, with every check on the way
    layers.py     one V1 layer streamed into a V2 layer blob (decompress, check, recompress)
    tarcheck.py   a tar archive's structure checked while it streams past
    image.py      the V2 config and manifest of a chain (deterministic bytes)
    run.py        the whole run: plan, convert each layer once, write each tag
"""
