"""truth.json: what a correct pipeline must find in the generated input.

Everything is derived from the records as delivered (files, positions,
readable parts), so it matches what a reader sees: duplicates and
conflicting duplicates by (path, index) order, latest versions at as_of
among the accepted copies, the rule violations of those latest versions
(tagged by defects.py; E09, a relation between records, recomputed here
and checked against the injected pairs), late events by definition.
"""
from __future__ import annotations

import schemas
from datagen import timebase as tb
from datagen.context import Context
from datagen.defects import RATES, STREAM_OF, business_key, latest_versions
from datagen.delivery import STREAMS, Delivery

SEVERITY = {r: "blocking" for r in ("E05", "E06", "T02", "T03", "T09", "F01", "F02", "F03",
                                    "F04")}
LATE_AFTER_MS = 48 * tb.HOUR_MS
DEAD_LETTER_KINDS = ("truncated", "incompatible_schema", "not_avro")


def business_time(stream: str, rec: dict) -> int | None:
    """The streaming event time of ARCHITECTURE.md (enrolment has none but
    its event_time)."""
    if stream == "contribution":
        return rec["clct_time"]
    if stream == "settlement":
        return rec["setl_time"]
    if stream == "settlement_list":
        return rec["upload_time"]
    if stream == "filing":
        return rec["completed_time"] if rec["completed_time"] is not None \
            else rec["submitted_time"]
    return None


def _content(fields: list[str], rec: dict) -> tuple:
    return tuple(rec.get(f) for f in fields)


def _json_key(stream: str, key):
    return list(key) if stream == "enrolment" else key


def build(ctx: Context, delivery: Delivery, sizes: dict[str, int], meta: dict) -> dict:
    files, read = {}, {s: [] for s in STREAMS}
    for f in delivery.files:
        readable = f.readable_records
        files[f.path] = {
            "stream": f.stream, "kind": f.kind, "records_written": len(f.records),
            "readable_records": len(readable),
            "dead_letters": 1 if f.kind in DEAD_LETTER_KINDS else 0, "bytes": sizes[f.path],
        }
        if f.note:
            files[f.path]["note"] = f.note
        if f.kind == "truncated":
            files[f.path]["block_size"] = f.block_size
        read[f.stream].extend((f.path, i, rec) for i, rec in enumerate(readable))

    streams_out, duplicates, conflicts, accepted_by_stream = {}, {}, {}, {}
    late = {}
    for stream in STREAMS:
        fields = schemas.load(stream).field_names
        first: dict[str, tuple] = {}
        dups, confl = [], []
        for path, index, rec in sorted(read[stream], key=lambda x: (x[0], x[1])):
            eid = rec["event_id"]
            if eid not in first:
                first[eid] = (path, index, rec)
            elif _content(fields, rec) == _content(fields, first[eid][2]):
                dups.append(eid)
            else:
                confl.append({"event_id": eid, "kept": {"path": first[eid][0],
                                                        "index": first[eid][1]},
                              "dead_lettered": {"path": path, "index": index},
                              "changed": rec.get("_conflict_change", "")})
        assert sorted(dups) == sorted(delivery.duplicates[stream]), stream
        assert len(confl) == len(delivery.conflicts[stream]), stream
        accepted = [v[2] for v in first.values()]
        accepted_by_stream[stream] = accepted
        duplicates[stream] = {"count": len(dups), "event_ids": sorted(dups)}
        conflicts[stream] = {"count": len(confl), "event_ids": sorted(c["event_id"] for c in
                                                                      confl),
                             "copies": sorted(confl, key=lambda c: c["event_id"])}
        late_recs = [r for r in accepted if business_time(stream, r) is not None
                     and r["event_time"] - business_time(stream, r) >= LATE_AFTER_MS]
        late[stream] = {"count": len(late_recs),
                        "event_ids": sorted(r["event_id"] for r in late_recs),
                        "keys": sorted({_json_key(stream, _any_key(stream, r))
                                        for r in late_recs}, key=str)}
        dead_files = sum(1 for f in delivery.files if f.stream == stream
                         and f.kind in DEAD_LETTER_KINDS)
        streams_out[stream] = {
            "files": sum(1 for f in delivery.files if f.stream == stream),
            "records_written": sum(files[f.path]["records_written"] for f in delivery.files
                                   if f.stream == stream),
            "readable_records": len(read[stream]),
            "duplicates": len(dups), "conflicting_duplicates": len(confl),
            "accepted": len(accepted), "dead_letter_files": dead_files,
            "dead_letters": len(confl) + dead_files,
            "after_as_of": sum(1 for r in accepted if r["event_time"] > ctx.as_of),
        }

    rules = {}
    multi_version = {}
    for prefix, stream in STREAM_OF.items():
        latest = latest_versions(stream, accepted_by_stream[stream], ctx.as_of)
        streams_out[stream]["business_keys_at_as_of"] = len(latest)
        hits: dict[str, list] = {}
        variants: dict[str, dict[str, int]] = {}
        for key, rec in latest.items():
            for rule in rec.get("_rules", ()):
                if rule != "E09":
                    hits.setdefault(rule, []).append(key)
                    v = variants.setdefault(rule, {})
                    v[rec["_variant"]] = v.get(rec["_variant"], 0) + 1
        if stream == "enrolment":
            hits["E09"] = _duplicate_enrolment(latest)
            tagged = sorted(k for k, r in latest.items() if "E09" in r.get("_rules", ()))
            if sorted(hits["E09"]) != tagged:
                raise AssertionError("E09 in the data differs from the injected pairs")
        for rule in sorted(r for r in RATES if r.startswith(prefix)):
            keys = sorted(hits.get(rule, []))
            rules[rule] = {"stream": stream, "severity": SEVERITY.get(rule, "quality"),
                           "count": len(keys), "keys": [_json_key(stream, k) for k in keys]}
            if variants.get(rule):
                rules[rule]["variants"] = dict(sorted(variants[rule].items()))
        counts: dict = {}
        for rec in accepted_by_stream[stream]:
            if rec["event_time"] <= ctx.as_of:
                k = business_key(stream, rec)
                counts[k] = counts.get(k, 0) + 1
        multi_version[stream] = {k for k, n in counts.items() if n > 1}

    corrected = {"enrolment": {tuple(e["key"]) for e in meta["enrolment_corrections"]},
                 "settlement": {e["setl_id"] for e in meta["settlement_corrections"]}}
    lifecycle = sorted(multi_version["enrolment"] - corrected["enrolment"])
    filing_cases = multi_version["filing"]
    return {
        "format": 1,
        "generator": meta["generator"],
        "as_of": tb.iso_beijing(ctx.as_of),
        "months": f"{ctx.months[0].label}..{ctx.months[-1].label}",
        "reference": "reference",
        "conventions": {
            "keys": "enrolment [psn_no, insutype]; settlement setl_id; filing case_id",
            "rules": "keys whose latest version at as_of (event_time <= as_of; ties: greater "
                     "event_id) violates the rule; keys not listed pass it",
            "duplicates": "extra identical deliveries of an event_id (each listed id arrives "
                          "twice)",
            "conflicting_duplicates": "same event_id, other content: the copy at the smallest "
                                      "(path, index) is kept, the other dead-lettered",
            "late_events": "accepted events whose event_time is >= 48 h after their business "
                           "time (contribution clct_time, settlement setl_time, "
                           "settlement_list upload_time, filing completed_time or "
                           "submitted_time)",
            "reconcile": "readable_records = accepted + duplicates + conflicting_duplicates; "
                         "dead_letters = conflicting_duplicates + dead_letter_files",
        },
        "streams": streams_out,
        "files": dict(sorted(files.items())),
        "rules": rules,
        "duplicates": duplicates,
        "conflicting_duplicates": conflicts,
        "corrections": {
            "enrolment": {"count": len(meta["enrolment_corrections"]),
                          "keys": sorted(e["key"] for e in meta["enrolment_corrections"]),
                          "details": sorted(meta["enrolment_corrections"],
                                            key=lambda e: e["key"])},
            "settlement": {"count": len(meta["settlement_corrections"]),
                           "keys": sorted(e["setl_id"] for e in meta["settlement_corrections"]),
                           "details": sorted(meta["settlement_corrections"],
                                             key=lambda e: e["setl_id"])},
        },
        "status_changes": {"enrolment": {"count": len(lifecycle),
                                         "keys": [list(k) for k in lifecycle]},
                           "filing_cases_with_several_events": len(filing_cases)},
        "reversals": {"count": len(meta["reversals"]),
                      "keys": sorted(e["setl_id"] for e in meta["reversals"]),
                      "details": sorted(meta["reversals"], key=lambda e: e["setl_id"])},
        "late_events": late,
        "after_as_of": {s: {"count": len(v), "event_ids": sorted(e["event_id"] for e in v)}
                        for s, v in meta["after_as_of"].items()},
        "undecodable": [
            {"path": p, "kind": f["kind"], "records_written": f["records_written"],
             "readable_records": f["readable_records"], "dead_letters": f["dead_letters"],
             "note": f.get("note", "")}
            for p, f in sorted(files.items()) if f["kind"] in DEAD_LETTER_KINDS],
        "older_schema": [
            {"path": p, "records": f["records_written"], "removed_field": "init_setl_id"}
            for p, f in sorted(files.items()) if f["kind"] == "older_schema"],
        "lost_in_truncation": {s: sorted(v) for s, v in delivery.lost.items()},
        "edge_cases": meta["edge_cases"],
    }


def _any_key(stream: str, rec: dict):
    """Business key of any stream (contribution and lists: the event_id)."""
    if stream in ("enrolment", "settlement", "filing"):
        return business_key(stream, rec)
    return rec["event_id"]


def _duplicate_enrolment(latest: dict) -> list:
    """E09 over the latest versions: certnos with active 310 and 390 records."""
    by_cert: dict[str, list] = {}
    for key, rec in latest.items():
        if rec["psn_insu_stas"] == "1" and rec["insutype"] in ("310", "390"):
            by_cert.setdefault(rec["certno"], []).append(key)
    out = []
    for keys in by_cert.values():
        if {k[1] for k in keys} == {"310", "390"}:
            out.extend(keys)
    return out
