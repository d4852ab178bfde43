"""Schemathesis over the OpenAPI schema against a running server, on SQLite and PostgreSQL:
no generated request, valid or not, may get a 5xx. A few cases per operation in the fast
suite; ``-m slow`` runs many more (FACEGATE_FUZZ_EXAMPLES overrides both)."""

from __future__ import annotations

import os

import pytest

from facegate.security import SYSTEM
from tests.api_fixtures import ServerThread, backend, fresh_database_url, pg_server  # noqa: F401 - fixtures

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

FAST = int(os.environ.get("FACEGATE_FUZZ_EXAMPLES", "4"))
SLOW = int(os.environ.get("FACEGATE_FUZZ_EXAMPLES", "60"))


@pytest.fixture(scope="module")
def fuzz_server(backend, request, tmp_path_factory):  # noqa: F811 - the backend fixture, by name
    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService

    tmp = tmp_path_factory.mktemp(f"fuzz_{backend}")
    url = fresh_database_url(backend, tmp, request, prefix="facegate_fuzz")
    service = GalleryService(Settings(data_dir=tmp / "data", database_url=url, rate_limit_enabled=False,
                                      background_worker=False), migrate=True)
    service.create_gallery("g", principal=SYSTEM)
    key = service.create_api_key("fuzz", ["admin"], principal=SYSTEM).secret
    runner = ServerThread(create_app(service))
    runner.start()
    yield runner.base_url, key
    runner.stop()
    service.close()


def fuzz(base_url: str, key: str, examples: int, derandomize: bool) -> tuple[int, list[str]]:
    """Every operation of the schema, ``examples`` generated cases each (valid and invalid
    input): (cases sent, the 5xx answers). Driven by hand rather than schemathesis's pytest
    plugin, which does not run on this pytest."""
    from hypothesis import given

    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    sent, failures = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "DELETE" and operation.path == "/api/v1/keys/{key_id}":
            continue  # revoking keys would revoke the fuzzer's own (small integer ids); tested elsewhere

        @settings(max_examples=examples, deadline=None, suppress_health_check=HEALTH, database=None,
                  derandomize=derandomize)
        @given(case=operation.as_strategy())
        def run(case) -> None:
            nonlocal sent
            sent += 1
            response = case.call(base_url=base_url, headers={"X-API-Key": key}, timeout=60)
            if response.status_code >= 500:
                failures.append(f"{operation.method.upper()} {operation.path} -> {response.status_code}: "
                                f"{response.text[:200]}")

        run()
    return sent, failures


HEALTH = list(HealthCheck)


def test_no_server_errors(fuzz_server):
    sent, failures = fuzz(*fuzz_server, examples=FAST, derandomize=True)
    print(f"fuzzed {sent} cases, {len(failures)} answered 5xx")
    assert sent > 100 and failures == [], failures[:10]


@pytest.mark.slow
def test_no_server_errors_many_cases(fuzz_server):
    sent, failures = fuzz(*fuzz_server, examples=SLOW, derandomize=False)
    print(f"fuzzed {sent} cases, {len(failures)} answered 5xx")
    assert failures == [], failures[:10]
