"""Synthetic data for the pipeline: ``yibao generate`` (datagen.cli).

A seeded population of Ningxia residents (and visitors insured in other
provinces) enrols, pays contributions, is treated and files service cases
over the requested months.  Their events are written as the five Avro
streams of DATA_CONTRACT.md, one file per stream and month, with known
defects and delivery faults injected at rates scaled by --defect-rate, and
truth.json listing exactly what a correct pipeline must find.

Pipeline of the generator (one module each): people -> enrolment ->
contribution -> settlement (+ settlement_versions) -> settlement_list ->
filing -> defects -> delivery -> avro_out, truth.
"""
