"""Great Expectations, created lazily: the ephemeral context, the PostgreSQL data source, Data Docs.

``import great_expectations`` costs seconds, so nothing here imports it at module level; the first
call that needs GX pays once per process. The context is ephemeral (in-memory stores, nothing
written but the Data Docs HTML), so no GX config file exists and the DSN/password is never written
anywhere. Progress bars and analytics are off.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import conninfo

from checks import ERROR, WARN, Expectation, Suite
from flows.core.errors import ConfigError
from flows.core.logs import get_logger
from flows.core.outcomes import NOT_PASSED
from flows.core.runtime import disable_telemetry
from flows.quality.offline_docs import make_offline

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

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
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

    # add_expectation (not add_expectation_configuration, which upserts by domain and would keep
    # only one of two table-level unexpected_rows expectations).
    suite = gx.ExpectationSuite(name=name)
    for config in configs:
        suite.add_expectation(config.to_domain_obj())
    return suite


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


@dataclass(kw_only=True)
class DocsResult:
    """One recorded expectation result, as Data Docs shows it."""

    key: str
    type: str
    kwargs: dict[str, Any]
    status: str
    result: dict[str, Any]
    sample: list[Any] | None = None
    error: str | None = None
    severity: str = WARN


@dataclass
class DocsSuite:
    """One suite's recorded results; ``status`` is pgtender's verdict (its suite row's status).

    Without a status (a site built from bare results) GX's own rule applies: every evaluated
    expectation passed.
    """

    name: str
    table: str
    window: Window
    results: list[DocsResult]
    status: str | None = None
    verdict: dict[str, Any] = field(default_factory=dict)

    def success(self) -> bool:
        if self.status is not None:
            return self.status not in NOT_PASSED
        return all(r.status == "passed" for r in self.results if r.status != "skipped")


def build_data_docs(state_dir: Path, run_name: str, suites: Sequence[DocsSuite]) -> Path:
    """Render recorded results (fused scan or GX) as a GX Data Docs site; returns its index.html."""
    with _gx_turn:
        return _build_data_docs(state_dir, run_name, suites)


def _build_data_docs(state_dir: Path, run_name: str, suites: Sequence[DocsSuite]) -> Path:
    from great_expectations.core.run_identifier import RunIdentifier  # noqa: PLC0415
    from great_expectations.data_context.types.resource_identifiers import (  # noqa: PLC0415
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    ctx = context(state_dir)
    built: list[Any] = []
    for entry in suites:
        run_id = RunIdentifier(run_name=run_name, run_time=entry.window.now)
        suite, validation = _validation_result(entry, run_id)
        if entry.name in {s.name for s in ctx.suites.all()}:
            ctx.suites.delete(entry.name)
        ctx.suites.add(suite)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=entry.name),
            run_id=run_id,
            batch_identifier=f"{entry.table}-{entry.window.start:%Y%m%d}",
        )
        ctx.validation_results_store.set(key, validation)
        built += [key, ExpectationSuiteIdentifier(name=entry.name)]
    # Only this build's pages (and the index): a long-lived process or a long backfill does not
    # re-render every validation it kept in memory each time.
    ctx.build_data_docs(resource_identifiers=built)
    remote = make_offline(docs_dir(state_dir))
    if remote:
        get_logger(job="quality").warning("data docs still load from the network", resources=remote[:10])
    return docs_dir(state_dir) / "index.html"


def _validation_result(entry: DocsSuite, run_id: Any) -> tuple[Any, Any]:
    """GX's suite and suite validation result of one recorded suite (its verdict as ``success``)."""
    from great_expectations.core.expectation_validation_result import (  # noqa: PLC0415
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation_configuration import (  # noqa: PLC0415
        ExpectationConfiguration,
    )

    configs = [
        ExpectationConfiguration(
            type=r.type,
            kwargs=r.kwargs,
            meta={"pgtender_key": r.key, "pgtender_severity": r.severity},
            severity=gx_severity(r.severity),
        )
        for r in entry.results
    ]
    results = []
    for r, config in zip(entry.results, configs, strict=True):
        errored = r.status == "error"
        result = dict(r.result)
        if r.sample and "unexpected_count" in result:
            result["partial_unexpected_list"] = r.sample[:20]
        elif r.sample:
            result["details"] = {"unexpected_rows_sample": r.sample[:20]}
        results.append(
            ExpectationValidationResult(
                # skipped = no rows in the window, where GX's own answer is a vacuous success
                success=r.status in ("passed", "skipped"),
                expectation_config=config,
                result=result,
                exception_info={
                    "raised_exception": errored,
                    "exception_message": r.error if errored else None,
                    "exception_traceback": None,
                },
            )
        )
    evaluated = [r for r in entry.results if r.status != "skipped"]
    passed = sum(1 for r in evaluated if r.status == "passed")
    validation = ExpectationSuiteValidationResult(
        success=entry.success(),
        results=results,
        suite_name=entry.name,
        statistics={
            "evaluated_expectations": len(evaluated),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(evaluated) - passed,
            "success_percent": (100.0 * passed / len(evaluated)) if evaluated else None,
        },
        meta={
            "great_expectations_version": _gx_version(),
            "run_id": run_id,
            "batch_spec": {"data_asset_name": entry.table, "table": entry.table},
            "batch_markers": {},
            "validation_time": entry.window.now.isoformat(),
            "pgtender": {
                "table": entry.table,
                "window": [entry.window.start.isoformat(), entry.window.end.isoformat()],
                "status": entry.status,
                **entry.verdict,
            },
        },
    )
    return gx_suite(entry.name, configs), validation


def _gx_version() -> str:
    import great_expectations as gx  # noqa: PLC0415

    return str(gx.__version__)
