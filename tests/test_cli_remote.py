"""``facegate --server URL --key KEY ...``: the command line on a real server through
facegate.client, with the same output as on the local database."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from facegate.cli import app
from facegate.security import SYSTEM
from tests.api_fixtures import ServerThread
from tests.conftest import package_photo

runner = CliRunner()


@pytest.fixture(autouse=True)
def local_again():
    """Each run sets where commands act; leave the next test module on the local database."""
    yield
    from facegate.cli import common

    common._remote = None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService

    tmp = tmp_path_factory.mktemp("cli_remote")
    settings = Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'remote.db'}", background_worker=False)
    service = GalleryService(settings, migrate=True)
    admin = service.create_api_key("admin", ["admin"], principal=SYSTEM)
    thread = ServerThread(create_app(service))
    thread.start()
    try:
        yield thread.base_url, admin.secret, service
    finally:
        thread.stop()
        service.close()


def test_commands_act_on_the_server(server, tmp_path, monkeypatch):
    url, secret, service = server
    # Nothing may touch a local database: point the local settings at a folder that must stay empty.
    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "local"))
    remote = ["--server", url, "--key", secret]

    def cli(*args: str, code: int = 0):
        result = runner.invoke(app, [*remote, *args])
        assert result.exit_code == code, result.output
        return result

    created = json.loads(cli("gallery", "create", "remote-g").stdout)
    assert created["name"] == "remote-g" and service.get_gallery("remote-g", principal=SYSTEM).name == "remote-g"
    assert "remote-g" in cli("gallery", "list").stdout
    enrolled = json.loads(cli("enroll", "remote-g", "yao", str(package_photo("yaoming.jpg")), "--name", "Yao Ming",
                              "--json").stdout)
    assert enrolled["accepted"] == 1
    verified = json.loads(cli("verify", "remote-g", "yao", str(package_photo("yaoming.jpg")), "--json").stdout)
    assert verified["match"] is True
    assert "match" in cli("verify", "remote-g", "yao", str(package_photo("yaoming.jpg"))).stdout
    identified = cli("identify", "remote-g", str(package_photo("yaoming.jpg"))).stdout
    assert "yao (Yao Ming) (main face)" in identified
    crowd = cli("identify", "remote-g", str(package_photo("players.jpg")), "--json", code=1).stdout
    assert "yao" in [f["subject"] for f in json.loads(crowd)["faces"]]
    assert "yao" in cli("subject", "list", "remote-g").stdout
    key = cli("key", "create", "--name", "kiosk", "--scopes", "recognize", "--gallery", "remote-g").stdout
    assert "fg_" in key
    listing = cli("key", "list").stdout
    assert "kiosk" in listing and "admin" in listing
    made = runner.invoke(app, [*remote, "operator", "create", "remote-proctor", "--role", "proctor",
                               "--password-stdin"], input="a long enough password\n")
    assert made.exit_code == 0, made.output
    assert "remote-proctor" in cli("operator", "list").stdout
    cli("operator", "delete", "remote-proctor")
    # The server saw it all: the decisions are in its database.
    assert len(service.list_decisions("remote-g", None, 50, None, principal=SYSTEM).items) >= 3
    assert not (tmp_path / "local").exists()
    # A server's refusal is a message, not a traceback.
    missing = cli("gallery", "show", "no-such-gallery", code=2)
    assert "not_found" in missing.output and "Traceback" not in missing.output
    wrong_key = runner.invoke(app, ["--server", url, "--key", "fg_wrong", "key", "list"])
    assert wrong_key.exit_code == 2 and "Traceback" not in wrong_key.output


@pytest.mark.parametrize("command", [["db", "upgrade"], ["models"], ["calibration", "list"], ["serve"],
                                     ["video", "recognize", "clip.mp4", "--gallery", "g"]])
def test_local_only_commands_say_so_with_a_server(command):
    result = runner.invoke(app, ["--server", "http://127.0.0.1:9", "--key", "k", *command])
    assert result.exit_code == 2, result.output
    assert "local database" in result.output and "without --server" in result.output


def test_a_server_that_does_not_answer_is_a_clear_error():
    result = runner.invoke(app, ["--server", "http://127.0.0.1:9", "--key", "k", "gallery", "list"])
    assert result.exit_code == 2 and "cannot reach http://127.0.0.1:9" in result.output


def _commands(group, prefix=()):
    import typer.main

    click_group = typer.main.get_command(group)
    for name, command in getattr(click_group, "commands", {}).items():
        yield [*prefix, name]
        if hasattr(command, "commands"):
            for sub in command.commands:
                yield [*prefix, name, sub]


def test_help_works_for_every_command():
    assert "--server" in runner.invoke(app, ["--help"]).output
    for path in _commands(app):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
