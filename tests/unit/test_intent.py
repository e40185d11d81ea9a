"""The design-intent catalog: revisions per generation, publication, time of effect, the default catalog."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from given import T0, intent
from pydantic import ValidationError

from twin.domain.intent import IntentCatalog, intent_for


def test_the_default_catalog_holds_the_three_generations_with_their_budgets() -> None:
    catalog = IntentCatalog.default()
    budgets = {i.generation: i.power_budget_watts.max for i in catalog}
    assert budgets == {"gen-a-130kw": 132_000.0, "gen-b-200kw": 205_000.0, "gen-c-600kw": 615_000.0}


def test_every_default_generation_states_all_of_its_intent() -> None:
    for i in IntentCatalog.default():
        assert i.required_components and i.firmware_baseline and i.required_tests and i.stage_allowance_days
        assert {"cdu", "cooling-manifold"} & set(i.required_components)
        assert i.cooling_capacity_watts >= (i.power_budget_watts.max or 0)
        assert 17 <= (i.coolant_supply_temperature_celsius.min or 0) and (i.coolant_supply_temperature_celsius.max
                                                                          or 99) <= 45
        assert {"in-transit", "received", "installed", "commissioned"} <= set(i.stage_allowance_days)


def test_publishing_a_newer_revision_makes_it_the_latest() -> None:
    catalog = IntentCatalog([intent(revision=1)])
    assert catalog.publish(intent(revision=2, title="revised"))
    assert catalog.latest("gen-a-130kw").revision == 2  # type: ignore[union-attr]
    assert catalog.at("gen-a-130kw", 1).revision == 1  # type: ignore[union-attr]
    assert catalog.revisions("gen-a-130kw") == [1, 2]


def test_publishing_a_revision_again_is_ignored_and_the_first_publication_wins() -> None:
    catalog = IntentCatalog([intent(revision=3, title="first")])
    assert not catalog.publish(intent(revision=3, title="second"))
    assert catalog.latest("gen-a-130kw").title == "first"  # type: ignore[union-attr]


def test_an_older_revision_arriving_late_is_kept_but_is_no_news() -> None:
    catalog = IntentCatalog([intent(revision=3)])
    assert not catalog.publish(intent(revision=2))
    assert catalog.latest("gen-a-130kw").revision == 3 and catalog.revisions("gen-a-130kw") == [2, 3]  # type: ignore


def test_the_revision_in_force_at_an_instant_is_the_last_published_by_then() -> None:
    catalog = IntentCatalog()
    catalog.publish(intent(revision=1), published_at=T0)
    catalog.publish(intent(revision=2), published_at=T0 + timedelta(days=10))
    assert catalog.as_of("gen-a-130kw", T0 + timedelta(days=9)).revision == 1  # type: ignore[union-attr]
    assert catalog.as_of("gen-a-130kw", T0 + timedelta(days=10)).revision == 2  # type: ignore[union-attr]
    assert catalog.as_of("gen-a-130kw", T0 - timedelta(days=1)).revision == 1  # type: ignore[union-attr]
    assert catalog.as_of("gen-x", T0) is None and intent_for(catalog, None, T0) is None
    assert intent_for({"gen-a-130kw": intent(revision=5)}, "gen-a-130kw", T0).revision == 5  # type: ignore


def test_a_catalog_round_trips_through_json_text_bytes_and_parsed_data() -> None:
    catalog = IntentCatalog([intent(revision=1), intent(revision=2), intent("gen-b-200kw")])
    data = catalog.to_json()
    for form in (data, orjson.dumps(data), orjson.dumps(data).decode(), data["intents"]):
        again = IntentCatalog.from_json(form)
        assert again.generations() == ["gen-a-130kw", "gen-b-200kw"] and again.revisions("gen-a-130kw") == [1, 2]
        assert again.to_json() == data


def test_a_malformed_catalog_names_the_bad_field() -> None:
    data = IntentCatalog([intent()]).to_json()
    data["intents"][0]["power_budget_watts"] = {"min": 10.0, "max": 5.0}
    with pytest.raises(ValidationError, match="power_budget_watts"):
        IntentCatalog.from_json(data)
    with pytest.raises(ValueError):
        IntentCatalog.from_json(b'{"intents": 3}')
