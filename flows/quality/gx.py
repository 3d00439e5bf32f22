"""Great Expectations, created lazily: the ephemeral context, the PostgreSQL data source, GX runs.

``import great_expectations`` costs seconds, so nothing here imports it at module level; the first
call that needs GX pays once per process. The context is ephemeral: no GX config file exists and
the data sources (the DSN/password) live in memory only. What Data Docs are built from (the
suites and the validation results pgtender records, ``gx_docs``) is kept under
``<state dir>/quality/gx`` so that the site outlives the process that built it. Progress bars and
analytics are off.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import conninfo

from checks import ERROR, WARN, Expectation, Suite
from flows.core.errors import ConfigError
from flows.core.telemetry import disable_telemetry

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from flows.quality.compiler import Window

_lock = threading.Lock()
_contexts: dict[str, Any] = {}
# One GX context per process is shared by the targets of a fleet sweep (threads); GX's context is
# not thread-safe (suites are added by name), so its users take turns. The fused SQL scan, where
# the time goes, runs outside GX and in parallel.
_gx_turn = threading.RLock()


def sqlalchemy_url(dsn: str) -> URL:
    """A ``postgresql+psycopg`` SQLAlchemy URL from any libpq DSN (TCP or Unix socket, URI or k=v)."""
    from sqlalchemy.engine import URL  # noqa: PLC0415 - only GX needs SQLAlchemy

    try:
        info = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise ConfigError("invalid database URL (not a libpq connection string)") from None
    host = str(info.pop("host", "") or "")
    port = info.pop("port", None)
    query: dict[str, str] = {}
    tcp_host: str | None = host or None
    if host.startswith("/") or "," in host:
        # A socket directory (or a host list) travels as a query parameter; libpq reads it there.
        query["host"] = host
        tcp_host = None
        if port:
            query["port"] = str(port)  # names the socket file (.s.PGSQL.<port>)
    user = info.pop("user", None)
    password = info.pop("password", None)
    dbname = info.pop("dbname", None)
    for key, value in info.items():
        query[str(key)] = str(value)
    return URL.create(
        "postgresql+psycopg",
        username=str(user) if user else None,
        password=str(password) if password else None,
        host=tcp_host,
        port=int(str(port)) if port and tcp_host else None,
        database=str(dbname) if dbname else None,
        query=query,
    )


def docs_dir(state_dir: Path) -> Path:
    return state_dir / "quality" / "data_docs"


def store_dir(state_dir: Path) -> Path:
    """Where the suites and validation results behind the Data Docs are kept (GX's JSON files)."""
    return state_dir / "quality" / "gx"


def context(state_dir: Path) -> Any:
    """The process's ephemeral GX context whose Data Docs site lives under ``state_dir``."""
    key = str(state_dir)
    with _lock:
        ctx = _contexts.get(key)
        if ctx is not None:
            return ctx
        disable_telemetry()
        import great_expectations as gx  # noqa: PLC0415 - slow import, on first use only
        from great_expectations.data_context.types.base import (  # noqa: PLC0415
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        stores = InMemoryStoreBackendDefaults()
        for name, folder in (
            (stores.expectations_store_name, "expectations"),
            (stores.validation_results_store_name, "validations"),
        ):
            stores.stores[name]["store_backend"] = {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(store_dir(state_dir) / folder),
            }
        config = DataContextConfig(
            store_backend_defaults=stores,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            analytics_enabled=False,
            data_docs_sites={
                "pgtender": {
                    "class_name": "SiteBuilder",
                    "show_how_to_buttons": False,
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(docs_dir(state_dir)),
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                }
            },
        )
        ctx = gx.get_context(mode="ephemeral", project_config=config)
        _contexts[key] = ctx
        return ctx


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


# pgtender's severities as GX 1.x's FailureSeverity values (GX also has "info", unused here).
GX_SEVERITY: dict[str, str] = {ERROR: "critical", WARN: "warning"}


def gx_severity(severity: str) -> Any:
    """GX's ``FailureSeverity`` for a pgtender severity (``error`` -> critical, ``warn`` -> warning)."""
    from great_expectations.expectations.metadata_types import FailureSeverity  # noqa: PLC0415

    return FailureSeverity(GX_SEVERITY[severity])


def expectation_configuration(
    exp: Expectation, kwargs: dict[str, Any], *, for_docs: bool = False, severity: str | None = None
) -> Any:
    """The GX ExpectationConfiguration of one suite expectation (kwargs already resolved).

    ``severity`` (pgtender's, default the expectation's own) becomes GX's ``severity``, so GX's
    ``get_max_severity_failure()`` of a validation is ``critical`` exactly when an ``error``
    expectation did not pass.
    """
    from great_expectations.expectations.expectation_configuration import (  # noqa: PLC0415
        ExpectationConfiguration,
    )

    from flows.quality.compiler import gx_kwargs  # noqa: PLC0415

    kw = gx_kwargs(exp, kwargs)
    if for_docs:
        kw = {k: _json_safe(v) for k, v in kw.items()}
    return ExpectationConfiguration(
        type=exp.type,
        kwargs=kw,
        meta={"pgtender_key": exp.key},
        severity=gx_severity(severity or exp.severity),
    )


def gx_suite(name: str, configs: Sequence[Any]) -> Any:
    import great_expectations as gx  # noqa: PLC0415

    # The expectations go in through the constructor: add_expectation_configuration upserts by
    # domain (it would keep one of two table-level unexpected_rows expectations), and
    # add_expectation writes each one to the context's store when a suite of that name was saved
    # before (every Data Docs build after the first: most of a build's time).
    return gx.ExpectationSuite(name=name, expectations=[config.to_domain_obj() for config in configs])


def window_query(suite: Suite, window: Window) -> str:
    """The GX query asset of a suite's window: a half-open range the planner prunes.

    Literal timestamps are ISO strings of validated datetimes (a query asset takes no parameters).
    """
    from psycopg import sql  # noqa: PLC0415

    tcol = sql.Identifier(suite.time_column)
    if suite.scope == "as_of":
        where = sql.SQL("{} < {}").format(tcol, sql.Literal(window.end.isoformat()))
    else:
        where = sql.SQL("{t} >= {s} AND {t} < {e}").format(
            t=tcol, s=sql.Literal(window.start.isoformat()), e=sql.Literal(window.end.isoformat())
        )
    return sql.SQL("SELECT * FROM {} WHERE {}").format(sql.Identifier(suite.table), where).as_string(None)


@dataclass
class GxSource:
    """A GX data source bound to one database (the password stays in memory)."""

    ctx: Any
    datasource: Any


_sources: dict[tuple[str, str], GxSource] = {}


def source(state_dir: Path, dsn: str) -> GxSource:
    ctx = context(state_dir)
    url = sqlalchemy_url(dsn)
    key = (str(state_dir), url.render_as_string(hide_password=False))
    with _lock:
        found = _sources.get(key)
        if found is not None:
            return found
        name = f"pg{len(_sources)}"
        # add_sql, not add_postgres: GX's PostgresDsn insists on a host name in the URL, and the
        # embedded server (and any local socket DSN) has none: the socket is a query parameter.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="You are using a generic SQLDatasource")
            datasource = ctx.data_sources.add_sql(name, connection_string=key[1])
        found = _sources[key] = GxSource(ctx, datasource)
        return found


def validate_with_gx(
    state_dir: Path,
    dsn: str,
    suite: Suite,
    window: Window,
    configs: Sequence[Any],
    *,
    result_format: str | dict[str, Any] = "SUMMARY",
) -> Any:
    with _gx_turn:
        return _validate_with_gx(state_dir, dsn, suite, window, configs, result_format=result_format)


def _validate_with_gx(
    state_dir: Path,
    dsn: str,
    suite: Suite,
    window: Window,
    configs: Sequence[Any],
    *,
    result_format: str | dict[str, Any],
) -> Any:
    """Run GX itself on the suite's window (a query asset); returns GX's suite validation result."""
    src = source(state_dir, dsn)
    asset_name = f"{suite.name}_{window.start:%Y%m%dT%H%M%S}_{window.end:%Y%m%dT%H%M%S}_{len(configs)}"
    with _lock:
        try:
            asset = src.datasource.get_asset(asset_name)
        except LookupError:
            asset = src.datasource.add_query_asset(asset_name, query=window_query(suite, window))
        try:
            batch_definition = asset.get_batch_definition("window")
        except KeyError:
            batch_definition = asset.add_batch_definition_whole_table("window")
    batch = batch_definition.get_batch()
    return batch.validate(gx_suite(suite.name, configs), result_format=result_format)
