"""Property-based fuzzing of the admin API from its OpenAPI document: no request gets a 5xx.

The app runs for real (uvicorn, the broker, the registry in a matcher).
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from test_admin_support import TOKEN, AdminServer, with_admin

from hookstream.kafka.topics import create_topics
from support import Pipeline, Receiver, unique_settings

pytestmark = [
    pytest.mark.integration,
    # The admin's Kafka clients run in the server thread and use the random module while
    # Hypothesis draws examples here, which Hypothesis takes for a strategy using it.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: Examples per operation and generation mode; the whole module stays well under a minute.
EXAMPLES = 20


@pytest.fixture(scope="module")
def served(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AdminServer, str]]:
    """An admin server whose writes the registry applies, and one webhook to aim at."""
    test_settings = with_admin(unique_settings(kafka_bootstrap), write_timeout_s=10.0)
    create_topics(kafka_bootstrap, test_settings.topics)
    pipeline = Pipeline(test_settings, tmp_path_factory.mktemp("fuzz-logs"))
    server = AdminServer(test_settings)
    receiver = Receiver()
    try:
        pipeline.start_matcher()
        server.start()
        with server.client() as http:
            created = http.post(
                "/api/v1/webhooks",
                json={
                    "id": "fuzz-target",
                    "name": "Fuzz target",
                    "payload_url": receiver.url("/fuzz"),
                    "triggers": ["/items"],
                },
            )
            assert created.status_code == 201, created.text
        yield server, "fuzz-target"
    finally:
        server.stop()
        pipeline.stop()
        receiver.close()


def _fuzz(server: AdminServer, strategy: st.SearchStrategy[Case[Any]], seen: Counter[int]) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Case[Any]) -> None:
        response = case.call(base_url=server.url, headers=AUTH, timeout=30)
        seen[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error])

    run()


def test_no_generated_request_gets_a_server_error(served: tuple[AdminServer, str]) -> None:
    server, webhook_id = served
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    seen: Counter[int] = Counter()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), (
            f"the admin API's schema has an invalid operation: {result.err()}"
        )
        operation = result.ok()
        _fuzz(server, operation.as_strategy(headers=AUTH), seen)
        negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE, headers=AUTH)
        with contextlib.suppress(Unsatisfiable):  # nothing to break in a route without input
            _fuzz(server, negative, seen)
        # Aimed at a real webhook too, so that edits, (de)activation and listings run for real;
        # deleting it or pinging fuzzed URLs would only slow the rest down.
        if "{webhook_id}" in operation.path and not (
            operation.method.upper() == "DELETE" or operation.path.endswith("/ping")
        ):
            aimed = operation.as_strategy(
                generation_mode=GenerationMode.POSITIVE,
                headers=AUTH,
                path_parameters={"webhook_id": webhook_id},
            )
            _fuzz(server, aimed, seen)
    assert not [code for code in seen if code >= 500], seen
    assert seen[200] and seen[201], seen
    assert seen[422] and seen[404], seen


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
_field_names = st.sampled_from(
    [
        "id",
        "name",
        "payload_url",
        "triggers",
        "auth",
        "secret",
        "smart_group_id",
        "connect_timeout_s",
        "deactivation_policy",
        "payload_format",
        "max_attempts",
        "retry_interval_s",
        "reason",
    ]
)
_bodies = (
    st.binary(max_size=64)
    | _json.map(lambda value: json.dumps(value).encode())
    | st.dictionaries(_field_names, _json, max_size=6).map(lambda value: json.dumps(value).encode())
)


def test_malformed_bodies_are_refused_without_a_server_error(
    served: tuple[AdminServer, str],
) -> None:
    server, webhook_id = served
    targets = [
        ("POST", "/api/v1/webhooks"),
        ("PATCH", f"/api/v1/webhooks/{webhook_id}"),
        ("POST", f"/api/v1/webhooks/{webhook_id}/deactivate"),
        ("PATCH", "/api/v1/settings"),
    ]
    with server.client() as http:

        @settings(max_examples=150, deadline=None, database=None)
        @given(target=st.sampled_from(targets), body=_bodies)
        def run(target: tuple[str, str], body: bytes) -> None:
            method, path = target
            response = http.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code < 500, (method, path, body, response.text)

        run()
