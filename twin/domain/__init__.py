"""The pure domain: a rack's fold, lifecycle, components, health, design intent, conformance
and fleet capacity. No I/O here (an import-linter contract run by the tests keeps it so):
time comes in on the events, or as an argument."""
