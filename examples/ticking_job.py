"""A job that reports progress as it goes: geocode every office of a workbook, one at a time.

`job_handler` hands the function a `tick(progress, info)` that updates the job,
so whoever watches sees the bar move and "Geocoded 3 of 8" as the work is done.
"""

from __future__ import annotations

import anyio

from listener import Event, Listener, Outcome
from listener.api import Api
from plugins.job_handler import Tick, job_handler

NAMESPACE = "ticking-job"
"""The namespace of this story's space (the demo scopes each story's listener to its own)."""

STEP_DELAY = 0.05
"""Seconds each lookup takes, standing in for a call to a geocoding service (tests set it to 0)."""

COORDINATES = {
    "Amsterdam": (52.3676, 4.9041),
    "Berlin": (52.52, 13.405),
    "Lisbon": (38.7223, -9.1393),
    "Montreal": (45.5019, -73.5674),
    "Nairobi": (-1.2921, 36.8219),
    "Osaka": (34.6937, 135.5023),
    "Paris": (48.8566, 2.3522),
    "São Paulo": (-23.5558, -46.6396),
}
"""A tiny gazetteer, so the example runs offline."""


async def geocode(event: Event, tick: Tick) -> Outcome:
    """Look up each office's city, reporting progress after each, then save the coordinates."""
    assert event.context.workbook_id, "a workbook action's job names its workbook"
    sheet = (await event.api.workbooks.get(event.context.workbook_id)).sheets[0]
    records = (await event.api.records.get(sheet.id)).items
    n = len(records)
    updates = []
    for i, record in enumerate(records, start=1):
        await anyio.sleep(STEP_DELAY)
        latitude, longitude = COORDINATES[record.values["city"]]
        updates.append({"id": record.id, "values": {"latitude": latitude, "longitude": longitude}})
        await tick(i * 100 // n, f"Geocoded {i} of {n}")
    await event.api.records.update(sheet.id, updates)
    return Outcome(message=f"Geocoded {n} offices.")


def register(listener: Listener) -> None:
    """Handle the workbook's Geocode button."""
    listener.use(job_handler("workbook:geocode", geocode))


listener = Listener("ticking-job").use(register)


async def scenario(api: Api) -> list[str]:
    """Create a workbook of offices, press Geocode, and return the job's id."""
    space = await api.spaces.create(name="Offices", namespace=NAMESPACE)
    workbook = await api.workbooks.create(
        name="Office Locations",
        space_id=space.id,
        sheets=[{"name": "Offices", "slug": "offices", "fields": [
            {"key": "city"}, {"key": "latitude", "type": "number"}, {"key": "longitude", "type": "number"}]}],
        actions=[{"operation": "geocode", "label": "Geocode", "mode": "background"}],
    )
    await api.records.insert(workbook.sheets[0].id, [{"city": city} for city in COORDINATES])
    job = await api.actions.trigger(workbook.id, "geocode")
    return [job.id]


if __name__ == "__main__":
    from listener.demo import run_example

    run_example(listener, scenario)
