"""End to end: on a generated fleet read through the emulator, every VM gets exactly the rule ids
and readiness the generator built it to have (its truth is never written into the fleet)."""

from __future__ import annotations

import pytest

from emulator.generator import generate_fleet_with_truth
from flows.assess import run_assessment
from flows.emulated import emulated
from tasks.settings import load_settings


@pytest.mark.slow
def test_generated_fleet_scores_as_the_generator_built_it(prefect_api, tmp_path):
    fleet, truth = generate_fleet_with_truth(vms=800, subscriptions=3, seed=11)
    settings = load_settings(environ={}, flags={"state_store": f"sqlite:///{tmp_path}/s.db"})
    with emulated(settings, fleet) as (_emu, emu_settings):
        scored = run_assessment(emu_settings, tmp_path / "out").scored
    assert len(scored) == len(truth)
    wrong = []
    for row in scored.itertuples():
        want = truth[row.vm_id]
        got = set(filter(None, ";".join([row.blockers, row.warnings, row.unknowns,
                                         row.infos]).split(";")))
        if (row.readiness, got) != (want.readiness, set(want.rules)):
            wrong.append(f"{row.vm_name} ({want.finding}, {want.protection}): got "
                         f"{row.readiness} {sorted(got)}, want {want.readiness} "
                         f"{sorted(want.rules)}")
    assert not wrong, "\n".join(wrong[:20])
