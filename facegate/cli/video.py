"""``facegate video recognize|enroll|submit|job``: live recognition of a file, camera or stream
(local), enrollment from a short clip (local or ``--server``), and a server's recognition jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from facegate.cli.backend import LocalBackend
from facegate.cli.common import (
    backend,
    build_service,
    clear_errors,
    deferred_progress,
    out,
    require_local,
    require_remote,
)
from facegate.security import SYSTEM

video_app = typer.Typer(help="Video: recognise every face live, enroll a person from a clip.", no_args_is_help=True)


@video_app.command("recognize")
def video_recognize(
    source: Annotated[str, typer.Argument(help="A video file, a camera index (0) or a stream URL (rtsp://...).")],
    gallery: Annotated[str, typer.Option("--gallery", "-g", help="The gallery to name faces from.")],
    annotated: Annotated[Path | None, typer.Option("--out", help="Write a copy with boxes and names (.mp4/.avi).")] = None,
    events: Annotated[Path | None, typer.Option("--events", help="Append events here as JSON lines.")] = None,
    every: Annotated[int, typer.Option("--every", min=1, help="Detect on every Nth frame; track in between.")] = 1,
    unknown_after: Annotated[float, typer.Option("--unknown-after", min=0.0,
                                                 help="Seconds an unknown face may stay before an event.")] = 5.0,
    alert_unknown: Annotated[bool, typer.Option("--alert-unknown",
                                                help="An access point: an unknown face in view raises an alert.")] = False,
) -> None:
    """Track and name every face; Ctrl-C stops cleanly with the outputs flushed (local; a server: ``video submit``)."""
    from facegate.video.runner import recognize_video

    require_local("facegate video recognize")

    with clear_errors(), deferred_progress("frames") as (start, advance):
        service = build_service()
        state = {"started": False}

        def progress(done: int, total: int | None) -> None:
            if not state["started"] and total:
                start(total)
                state["started"] = True
            advance()

        report = recognize_video(
            service, gallery, int(source) if source.isdigit() else source, principal=SYSTEM, out=annotated,
            events=events, every=every, unknown_after_s=unknown_after, alert_unknown=alert_unknown, progress=progress,
        )
    named = ", ".join(f"{subject} ({n} track{'s' * (n > 1)})" for subject, n in sorted(report.identified.items()))
    out.print(f"{report.frames} frames in {report.seconds:.1f} s ({report.fps:.1f} fps), {report.tracks} tracks; "
              f"named: {named or 'nobody'}" + ("; stopped early" if report.stopped else "")
              + ("; the file ended early (truncated?)" if report.truncated else ""))


@video_app.command("enroll")
def video_enroll(
    clip: Annotated[Path, typer.Argument(help="A short clip of the person.")],
    gallery: Annotated[str, typer.Option("--gallery", "-g")],
    subject: Annotated[str, typer.Option("--subject", "-s", help="The person's id in the gallery.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    rights: Annotated[str | None, typer.Option("--rights", help="Access rights, comma-separated (lab:enter,...).")] = None,
    track: Annotated[int | None, typer.Option("--track", help="The track to enroll when several people are in view.")] = None,
    frames: Annotated[int, typer.Option("--frames", min=1, max=20, help="How many frames to enroll.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON.")] = False,
) -> None:
    """Enroll K good, different-looking frames of the clip's one person (exit 1 if none is accepted)."""
    from facegate.gallery.schemas import EnrollReport

    with clear_errors():
        report = backend().enroll_video(gallery, subject, clip, display_name=name, rights=rights, track=track,
                                        frames=frames)
    e = EnrollReport(**report["enrollment"])
    if as_json:
        out.print_json(json.dumps(report))
    else:
        out.print(f"{subject}: {e.accepted} accepted, {e.rejected} rejected, {e.skipped} skipped of frames "
                  f"{report['chosen_frames']} (track {report['track']}, {report['frames_sampled']} frames sampled)")
        for item in e.items:
            if item.status != "accepted":
                out.print(f"  {item.image}: {item.status} ({item.code}) {item.reason}")
        for note in report["notes"]:
            out.print(f"  {note}")
    if e.accepted == 0:
        raise typer.Exit(code=1)


@video_app.command("submit")
def video_submit(
    clip: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The clip to recognise.")],
    gallery: Annotated[str, typer.Option("--gallery", "-g")],
    every: Annotated[int, typer.Option("--every", min=1, max=30, help="Detect on every Nth frame.")] = 1,
    unknown_after: Annotated[float, typer.Option("--unknown-after", min=0.0, max=3600.0)] = 5.0,
    alert_unknown: Annotated[bool, typer.Option("--alert-unknown")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to finish and print its result.")] = False,
) -> None:
    """Upload a clip to the server as a recognition job (needs --server); prints the job."""
    require_remote("facegate video submit")
    with clear_errors():
        client = backend()
        assert not isinstance(client, LocalBackend)
        job = client.submit_video_job(gallery, clip, every=every, unknown_after_s=unknown_after, alert_unknown=alert_unknown)
        if wait:
            job = client.wait_video_job(job["id"])
    out.print_json(json.dumps(job, default=str))


@video_app.command("job")
def video_job(job_id: str) -> None:
    """A server's recognition job: state, progress and result (needs --server)."""
    require_remote("facegate video job")
    with clear_errors():
        client = backend()
        assert not isinstance(client, LocalBackend)
        out.print_json(json.dumps(client.video_job(job_id), default=str))
