"""``facegate liveness challenge|check``: ask for a challenge, judge a recorded clip, on the
local database as the system or on a server with ``--server``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facegate.cli.common import backend, clear_errors, out, print_json

liveness_app = typer.Typer(help="Liveness: issue a challenge, check a recorded clip.", no_args_is_help=True)


@liveness_app.command("challenge")
def challenge(
    gallery: str,
    subject: Annotated[str | None, typer.Option("--subject", help="Bind the challenge to a subject.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A random single-use challenge: its nonce, actions, expiry."""
    with clear_errors():
        issued = backend().liveness_challenge(gallery, subject=subject)
    if as_json:
        print_json(issued)
        return
    out.print(f"nonce {issued.nonce} (expires {issued.expires_at.isoformat(timespec='seconds')}); within "
              f"{issued.max_seconds:g} s: " + ", then ".join(a.instruction for a in issued.actions))


@liveness_app.command("check")
def check(
    gallery: str,
    clip: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A recorded video (mp4, webm...).")],
    nonce: Annotated[str | None, typer.Option("--challenge", help="The nonce the clip answers (active).")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="The claimed subject.")] = None,
    start: Annotated[float, typer.Option("--start", help="Seconds into the clip.")] = 0.0,
    seconds: Annotated[float, typer.Option("--seconds", help="Length of the window.")] = 3.0,
    fps: Annotated[float, typer.Option("--fps")] = 10.0,
    mode: Annotated[str | None, typer.Option("--mode", help="passive or active; default: the gallery's.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Judge a window of a clip as a recording; exit code 1 when it fails."""
    from facegate.client.liveness import RecordingArg
    from facegate.liveness.recording import encode_jpeg, read_window

    frames, times = read_window(clip, start, start + seconds, fps=fps)
    rec = RecordingArg(frames=[encode_jpeg(f) for f in frames], timestamps=times, challenge=nonce)
    with clear_errors():
        result = backend().liveness_check(gallery, rec, subject=subject, mode=mode)
    if as_json:
        print_json(result)
    else:
        verdict = "[bold green]LIVE[/]" if result.passed else "[bold red]REFUSED[/]"
        acts = "; ".join(f"{a.action} {'at %.2f s' % a.start if a.happened and a.start is not None else 'not seen'}"
                         for a in result.actions)
        out.print(f"{verdict} {result.reason}; {acts or 'no challenge'}; passive {result.passive}")
    if not result.passed:
        raise typer.Exit(code=1)
