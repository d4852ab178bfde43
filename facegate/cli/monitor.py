"""``facegate monitor``: the drift report, the automatic response and its undo.

``facegate monitor GALLERY`` is short for ``facegate monitor drift GALLERY``. On the local
database, or on a server with ``--server``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table
from typer.core import TyperGroup

from facegate.cli.common import backend, clear_errors, out

if TYPE_CHECKING:
    from facegate.monitoring.drift import DriftReport, DriftWindows
    from facegate.monitoring.response import RecalibrationPlan, ResponseReport


class _DriftByDefault(TyperGroup):
    """A group whose first argument, when it names no subcommand, is a gallery for ``drift``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["drift", *args]
        return super().parse_args(ctx, args)


monitor_app = typer.Typer(
    cls=_DriftByDefault, no_args_is_help=True,
    help="Drift of recent decisions against a reference window, and the automatic response.",
)

# The window options of ``drift`` and ``respond``; the defaults go on the parameters.
RefDays = Annotated[float, typer.Option("--reference-days", help="Reference window: this many days before the recent one.")]
RecentDays = Annotated[float, typer.Option("--recent-days", help="Recent window: the last this many days.")]
RefLast = Annotated[
    int | None, typer.Option("--reference-last", help="Reference window: the N decisions before the recent ones.")
]
RecentLast = Annotated[int | None, typer.Option("--recent-last", help="Recent window: the last N decisions.")]


def _windows(
    reference_days: float, recent_days: float, reference_last: int | None, recent_last: int | None
) -> DriftWindows:
    from pydantic import ValidationError

    from facegate.errors import InvalidRequestError
    from facegate.monitoring.drift import DriftWindows

    try:
        return DriftWindows(reference_days=reference_days, recent_days=recent_days,
                            reference_last=reference_last, recent_last=recent_last)
    except ValidationError as exc:
        raise InvalidRequestError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None


def _fmt(value: float | None, digits: int = 3) -> str:
    """Compact numbers for an 80-column table: 3 significant digits."""
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


def drift_table(report: DriftReport) -> Table:
    table = Table(title=(f"drift of {report.gallery}: {report.recent.label} ({report.recent.decisions}) vs "
                         f"{report.reference.label} ({report.reference.decisions})"), box=box.SIMPLE_HEAD)
    for col in ("feature", "n", "mean", "PSI (lim)", "KS/Δ", "p", "drift"):
        table.add_column(col, justify="left" if col in ("feature", "drift") else "right", no_wrap=True)
    for f in report.features:
        flag = "[bold red]DRIFT[/]" if f.drifted else ("[dim]few[/]" if not f.enough_samples else "[green]no[/]")
        table.add_row(f.feature, f"{f.reference_n}/{f.recent_n}", f"{_fmt(f.reference_mean)}→{_fmt(f.recent_mean)}",
                      f"{_fmt(f.psi, 2)} ({_fmt(f.psi_limit, 2)})", _fmt(f.statistic, 2), _fmt(f.p_value, 2), flag)
    return table


@monitor_app.command("drift")
def drift(
    gallery: str,
    reference_days: RefDays = 28.0,
    recent_days: RecentDays = 7.0,
    reference_last: RefLast = None,
    recent_last: RecentLast = None,
    psi_limit: Annotated[float | None, typer.Option("--psi-limit", help="PSI over which a feature drifted (default 0.2, raised for small windows).")] = None,
    p_value: Annotated[float | None, typer.Option("--p-value", help="KS / Fisher p-value under which a feature drifted (default 0.01).")] = None,
    min_samples: Annotated[int | None, typer.Option("--min-samples", help="Values needed in each window (default 20).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """PSI and KS / Fisher tests of scores, quality, brightness, face size, reject and no-face rates."""
    with clear_errors():
        windows = _windows(reference_days, recent_days, reference_last, recent_last)
        report = backend().drift(gallery, windows, psi_limit, p_value, min_samples)
        if as_json:
            out.print_json(report.model_dump_json())
            return
        out.print(drift_table(report))
        if report.drifted:
            out.print(f"[bold red]drift[/] in {', '.join(report.drifted_features)}; "
                      f"'facegate monitor respond {gallery}' plans the response")
        else:
            out.print("no drift")


def _recalibration_line(rc: RecalibrationPlan) -> str:
    if rc.threshold is None:
        return f"recalibration: skipped ({rc.skipped_reason})"
    low, high = rc.threshold_ci or (None, None)
    return (
        f"recalibration: {rc.impostor_pairs} impostor / {rc.genuine_pairs} genuine pairs from {rc.probes} "
        f"verified probes; threshold at FAR {rc.target_far:g}: {rc.threshold:.4f} "
        f"(CI {_fmt(low, 4)}-{_fmt(high, 4)}; the calibration in use gives {rc.current_threshold:.4f})"
        f"{'' if rc.resolvable else ' [yellow]- does not resolve the gallery FAR, not promotable[/]'}"
        + (f"; registered as version {rc.version}{' and promoted' if rc.promote else ''}" if rc.version else "")
    )


def _print_response(report: ResponseReport, apply: bool) -> None:
    """The text form of ``facegate monitor respond``."""
    out.print(drift_table(report.drift))
    if not report.triggered:
        out.print("nothing drifted and the reject rate is steady: no action (use --force to act anyway)")
        return
    out.print("[bold]triggered by[/]: " + "; ".join(report.reasons))
    if report.recalibration is not None:
        out.print(_recalibration_line(report.recalibration))
    rf = report.refresh
    if rf is not None:
        out.print(f"template refresh: {len(rf.add)} probe(s) of {rf.candidates} verified to add, "
                  f"{len(rf.replace_template_ids)} older refresh template(s) to replace; left out: {rf.skipped or 'none'}")
        for item in rf.add:
            out.print(f"  {item.subject}: decision {item.decision_id}, score {item.score:.3f} "
                      f"(threshold {item.threshold:.3f}), quality {item.quality:.2f}"
                      + (f" -> template {item.template_id}" if item.template_id else ""))
    for action in report.actions:
        out.print(f"recorded action {action.id} ({action.kind}); undo with 'facegate monitor revert {action.id}'")
    if not apply:
        out.print("dry run: nothing changed; add --apply to carry it out")


@monitor_app.command("respond")
def respond(
    gallery: str,
    apply: Annotated[bool, typer.Option("--apply", help="Carry out and record the actions (default: dry run).")] = False,
    promote: Annotated[bool, typer.Option("--promote", help="Make the new calibration production (if it resolves the gallery's FAR).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Act even when nothing drifted.")] = False,
    no_recalibrate: Annotated[bool, typer.Option("--no-recalibrate", help="Only refresh templates.")] = False,
    no_refresh: Annotated[bool, typer.Option("--no-refresh", help="Only recalibrate.")] = False,
    max_refresh: Annotated[int, typer.Option("--max-refresh-per-subject", help="Refresh templates kept per subject.")] = 3,
    min_quality: Annotated[float, typer.Option("--min-quality", help="Probe quality needed to become a template.")] = 0.7,
    margin: Annotated[float, typer.Option("--margin", help="Score over the threshold needed to become a template.")] = 0.10,
    reject_rise: Annotated[float, typer.Option("--reject-rate-rise", help="Act when the reject rate rose by more.")] = 0.10,
    reference_days: RefDays = 28.0,
    recent_days: RecentDays = 7.0,
    reference_last: RefLast = None,
    recent_last: RecentLast = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """After drift: recalibrate on recent verified probes and refresh templates (dry run unless --apply)."""
    from facegate.monitoring.response import ResponsePolicy

    with clear_errors():
        policy = ResponsePolicy(
            promote=promote, force=force, recalibrate=not no_recalibrate, refresh=not no_refresh,
            max_refresh_per_subject=max_refresh, refresh_min_quality=min_quality, refresh_score_margin=margin,
            reject_rate_rise=reject_rise,
        )
        windows = _windows(reference_days, recent_days, reference_last, recent_last)
        report = backend().respond(gallery, windows, policy, apply=apply)
        if as_json:
            out.print_json(report.model_dump_json())
            return
        _print_response(report, apply)


@monitor_app.command("actions")
def actions(gallery: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The gallery's recorded monitoring actions, newest first."""
    with clear_errors():
        rows = backend().monitoring_actions(gallery)
        if as_json:
            out.print_json(json.dumps([r.model_dump(mode="json") for r in rows]))
            return
        table = Table(title=f"monitoring actions of {gallery}", box=box.SIMPLE_HEAD)
        for col in ("id", "kind", "created", "state", "what"):
            table.add_column(col, no_wrap=col != "what")
        for r in rows:
            state = f"reverted {r.reverted_at:%Y-%m-%d %H:%M}" if r.reverted_at else "active"
            what = (f"{len(r.details.get('added', []))} template(s) added, {len(r.details.get('replaced', []))} replaced"
                    if r.kind == "refresh_templates" else
                    f"calibration v{r.details.get('version')}{' promoted' if r.details.get('promoted') else ''}")
            table.add_row(str(r.id), r.kind, f"{r.created_at:%Y-%m-%d %H:%M}", state, what)
        out.print(table)


@monitor_app.command("revert")
def revert(action_id: int) -> None:
    """Undo a recorded action: remove the templates it added, or restore the previous production calibration."""
    with clear_errors():
        out.print_json(json.dumps(backend().revert_action(action_id), default=str))
