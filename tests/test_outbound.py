"""The server sends requests only where it may: webhook URLs are refused when they point at
loopback, private or reserved addresses (unless the operator allows them), at other schemes,
or are no URL at all. No traffic leaves loopback: resolution is faked where a public name is
needed, and the one delivery attempted goes to a refused address and is never sent."""

from __future__ import annotations

import pytest

from facegate.errors import InvalidRequestError
from facegate.security.outbound import check_outbound_url


def fake_dns(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        return table.get(host, [host])
    return resolve


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1:8000/internal", "loopback"),
    ("http://localhost/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://169.254.169.254/latest/meta-data", "private"),  # cloud metadata (link-local)
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://0.0.0.0/hook", "loopback"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://example.org/", "only http and https"),
    ("not a url at all", "only http and https"),
    ("http:///nohost", "no host"),
    ("http://user:pw@hooks.example.org/", "user name or password"),
    ("http://rebind.example.org/hook", "loopback"),  # a public-looking name that resolves to loopback
])
def test_refused(url, reason):
    dns = fake_dns({"localhost": ["127.0.0.1", "::1"], "rebind.example.org": ["93.184.215.14", "127.0.0.1"],
                    "hooks.example.org": ["93.184.215.14"]})
    with pytest.raises(InvalidRequestError) as err:
        check_outbound_url(url, resolve=dns)
    assert reason.split()[0] in str(err.value) or "reserved" in str(err.value), str(err.value)


def test_public_hosts_pass_and_the_operator_can_allow_internal_ones():
    dns = fake_dns({"hooks.example.org": ["93.184.215.14"], "hooks.internal": ["10.0.0.7"]})
    assert check_outbound_url("https://hooks.example.org/facegate", resolve=dns)
    with pytest.raises(InvalidRequestError):
        check_outbound_url("https://hooks.internal/facegate", resolve=dns)
    assert check_outbound_url("https://hooks.internal/facegate", ["hooks.internal"], resolve=dns)
    assert check_outbound_url("https://hooks.internal/facegate", ["10.0.0.0/8"], resolve=dns)
    assert check_outbound_url("http://127.0.0.1:9/x", ["127.0.0.1"])


def test_a_gallery_key_cannot_point_the_webhook_at_loopback(tmp_path):
    """Through the service (the one place gallery settings change): refused with the reason;
    an operator-allowed host is accepted; a stored URL that became refused is not sent to."""
    from facegate.config import Settings
    from facegate.gallery.schemas import GallerySettings
    from facegate.gallery.service import SYSTEM, GalleryService
    from facegate.workflows import Workflows

    service = GalleryService(Settings(data_dir=tmp_path / "data"), migrate=True)
    try:
        service.create_gallery("lab", principal=SYSTEM)
        for url in ("http://127.0.0.1:8000/internal", "file:///etc/passwd", "not a url at all"):
            with pytest.raises(InvalidRequestError, match="alert_webhook_url"):
                service.update_gallery_settings("lab", {"alert_webhook_url": url}, principal=SYSTEM)
        with pytest.raises(InvalidRequestError, match="alert_webhook_url"):
            service.create_gallery("lab2", settings=GallerySettings(alert_webhook_url="http://10.0.0.1/x"),
                                   principal=SYSTEM)
        assert service.get_gallery("lab", principal=SYSTEM).settings.alert_webhook_url == ""
    finally:
        service.close()

    # The operator allows loopback; the URL is stored. Then the allowance is withdrawn: the
    # delivery is refused at send time and recorded as such (no request is made).
    allowed = GalleryService(Settings(data_dir=tmp_path / "data", outbound_allowed_hosts="127.0.0.1"))
    try:
        allowed.update_gallery_settings("lab", {"alert_webhook_url": "http://127.0.0.1:9/hook"}, principal=SYSTEM)
    finally:
        allowed.close()
    service = GalleryService(Settings(data_dir=tmp_path / "data"))
    try:
        wf = Workflows(service)
        with service.ctx.sessions.begin() as session:
            from facegate.gallery.context import find_gallery

            g = find_gallery(session, "lab", SYSTEM)
            wf.alerts.raise_alert(session, g, "test", "a test alert")
        results = wf.alerts.deliver_due()
        assert results and not results[0].ok and "refused" in results[0].error
    finally:
        service.close()
