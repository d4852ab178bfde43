"""``facegate enroll``: ``facegate enroll GALLERY SUBJECT PHOTOS...`` enrolls one subject (on the
local database or a server), ``facegate enroll bulk SOURCE --gallery G`` many people at once
(a folder per person or a roster CSV, on this machine's database, locally or on Ray)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from facegate.cli.common import (
    build_service,
    clear_errors,
    deferred_progress,
    out,
    print_json,
    require_local,
)
from facegate.cli.compute import EngineChoice, EngineOption, WorkersOption, compute
from facegate.cli.recognition import enroll

if TYPE_CHECKING:
    from facegate.workflows.bulk_enroll import BulkReport

SINGLE = "photos"  # the one-subject form; reached by any first argument but "bulk", never by its name
_SINGLE_ARGS = "facegate.enroll.single_args"
SHOWN_REJECTIONS = 10


class EnrollGroup(TyperGroup):
    """``enroll`` with a default command: ``bulk`` is chosen by its name, anything else is the
    one-subject form, so ``facegate enroll GALLERY SUBJECT PHOTOS...`` reads and reports exactly
    as before ``bulk`` existed. A gallery named "bulk" is reached with ``facegate enroll -- bulk ...``."""

    def _routed(self, name: str | None) -> bool:
        command = self.commands.get(name or "")
        return command is not None and not command.hidden

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        first = args[0] if args else None
        if first in ctx.help_option_names or self._routed(first):
            return super().parse_args(ctx, args)
        ctx.meta[_SINGLE_ARGS] = list(args)
        return []

    def invoke(self, ctx: Any) -> Any:
        args = ctx.meta.pop(_SINGLE_ARGS, None)
        if args is None:
            return super().invoke(ctx)
        single = self.commands[SINGLE]
        # Parsed as the top-level command it used to be: usage and errors say "facegate enroll".
        with single.make_context(ctx.info_name, args, parent=ctx.parent) as sub:
            return single.invoke(sub)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        single = self.commands[SINGLE]
        with single.make_context(ctx.info_name, [], parent=ctx.parent, resilient_parsing=True) as sub:
            single.format_help(sub, formatter)
        super().format_help(ctx, formatter)


enroll_app = typer.Typer(
    cls=EnrollGroup,
    help="Enroll one subject's photos (facegate enroll GALLERY SUBJECT PHOTOS...), or many people at once from "
         "a folder per person or a roster CSV (facegate enroll bulk SOURCE --gallery G; see its --help).",
    subcommand_metavar="bulk SOURCE --gallery GALLERY [OPTIONS]",
)
enroll_app.command(SINGLE, hidden=True)(enroll)


@enroll_app.command("bulk")
def enroll_bulk(
    source: Annotated[Path, typer.Argument(help=(
        "A folder with one subfolder per person (the subfolder's name is the subject id) or a roster CSV "
        "with the columns subject_id,photo[,display_name] (photo: a file or folder relative to the CSV)."))],
    gallery: Annotated[str, typer.Option("--gallery", "-g", help="The gallery to enroll into.")],
    engine: EngineOption = EngineChoice.local,
    workers: WorkersOption = 0,
    report_file: Annotated[Path | None, typer.Option(
        "--report", help="Write the per-photo report: FILE.csv (subject, photo, status, code, reason) or FILE.json.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON.")] = False,
) -> None:
    """Enroll many people at once; each photo accepted, rejected or skipped with a reason.

    Photos already enrolled (the same bytes for the same subject) are skipped before any
    analysis, so a run that was stopped is finished by running it again. Exit 1 if no photo
    is enrolled at the end."""
    require_local("facegate enroll bulk")
    from facegate.security import SYSTEM
    from facegate.workflows.bulk_enroll import bulk_enroll, check_report_path, read_source, write_report

    with clear_errors():
        if report_file is not None:
            check_report_path(report_file)
        photos = read_source(source)
        service = build_service()
        with deferred_progress(f"enrolling ({engine.value})") as (start, advance):
            report = bulk_enroll(service, gallery, photos, compute(engine, workers), principal=SYSTEM,
                                 on_start=start, on_progress=advance)
        if report_file is not None:
            write_report(report, report_file)
    if as_json:
        print_json(report)
    else:
        _print_summary(report, report_file)
    if report.accepted + report.already_enrolled == 0:
        raise typer.Exit(code=1)


def _print_summary(report: BulkReport, report_file: Path | None) -> None:
    rate = report.photos / report.seconds if report.seconds > 0 else 0.0
    out.print(
        f"{report.photos} photos of {report.subjects} subjects into {report.gallery} ({report.engine}, "
        f"{report.seconds:.1f} s, {rate:.1f} photos/s): {report.accepted} accepted, {report.rejected} rejected, "
        f"{report.skipped} skipped ({report.already_enrolled} already enrolled); "
        f"{report.subjects_created} subjects created"
    )
    rejected = [item for item in report.items if item.status == "rejected"]
    if not rejected:
        return
    codes = Counter(item.code for item in rejected)
    out.print("rejected: " + ", ".join(f"{code} {n}" for code, n in codes.most_common()))
    for item in rejected[:SHOWN_REJECTIONS]:
        out.print(f"  {item.photo}: {item.code}: {item.reason}", markup=False, highlight=False)
    if len(rejected) > SHOWN_REJECTIONS:
        more = f"see {report_file}" if report_file else "use --report FILE.csv for all"
        out.print(f"  ... and {len(rejected) - SHOWN_REJECTIONS} more ({more})")
