"""Verified table dumps in an archive store (a local or shared directory, or object storage through
fsspec): what retention's dump mode and the rollback guard share.

- ``policy``: ``[retention] dump_dir`` (a path or a URL) and ``[retention.storage]`` (endpoint,
  credentials by the name of an environment variable or a Prefect Secret block);
- ``store``: one interface over a directory and an object store (atomic publish, removal, listing);
- ``ownership``: every partial file or object carries the run that writes it, and only that run —
  or a later one, once the ledger says the writer is over — removes it;
- ``manifest``: the dump format, its manifest and its verification, read back from the store;
- ``copy_out``: COPY a relation into the store; ``restore``: load a dump back;
- ``tables``: whole-table dumps (the rollback guard's).
"""
