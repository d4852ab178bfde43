"""The ``facegate`` command line: a thin shell over the engine, evaluation, gallery service,
monitoring and workflows. This package only assembles :data:`app` from the command-group
modules; what they share is in :mod:`facegate.cli.common`."""

from __future__ import annotations

import typer

from facegate.cli.access import access_app
from facegate.cli.alerts import alerts_app, lockout_app
from facegate.cli.calibration import calibration_app
from facegate.cli.common import remote_options
from facegate.cli.db import db_app
from facegate.cli.enrollment import enroll_app
from facegate.cli.evaluation import calibrate, eval_app
from facegate.cli.exams import attendance_app, checkin, roster_app, session_app
from facegate.cli.gallery import gallery_app
from facegate.cli.keys import key_app
from facegate.cli.liveness import liveness_app
from facegate.cli.models import compare, demo, detect, models
from facegate.cli.monitor import monitor_app
from facegate.cli.operators import operator_app
from facegate.cli.recognition import identify, subject_app, verify
from facegate.cli.serve import serve
from facegate.cli.video import video_app

app = typer.Typer(help="FaceGate: face detection, verification and identification.", no_args_is_help=True)
app.callback()(remote_options)  # --server URL --key KEY: act on a server through facegate.client

# Commands, then groups: ``facegate --help`` lists them in this order.
for command in (models, detect, compare, calibrate, demo, serve, verify, identify, checkin):
    app.command()(command)

# ``enroll`` is a group: ``facegate enroll GALLERY SUBJECT PHOTOS...`` and ``facegate enroll bulk``.
for group, name in (
    (enroll_app, "enroll"), (eval_app, "eval"), (gallery_app, "gallery"), (subject_app, "subject"), (key_app, "key"), (db_app, "db"), (calibration_app, "calibration"),
    (monitor_app, "monitor"), (roster_app, "roster"), (session_app, "session"), (attendance_app, "attendance"),
    (access_app, "access"), (alerts_app, "alerts"), (lockout_app, "lockout"), (video_app, "video"),
    (operator_app, "operator"), (liveness_app, "liveness"),
):
    app.add_typer(group, name=name)

__all__ = ["app"]
