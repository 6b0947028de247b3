"""Suite parameters: the reference-dependent values the suites name as
``{"$PARAMETER": ...}``, bound from reference data at run time (the same
values for Great Expectations and for the compiled SQL)."""
from __future__ import annotations


def suite_parameters(ref) -> dict:
    """``ref`` is a ``reference.Reference`` (or anything with its attributes)."""
    province = ref.province
    counties_cities = sorted(r.code for r in (*ref.counties, *ref.cities))
    province_prefixes = sorted({r.code[:2] for r in ref.regions.values() if r.level == "province"})
    return {
        # E01 (and E03/E04 through it): first two digits a province in regions.csv
        "province_prefixes": province_prefixes,
        # E06, T09: local county, city or province code
        "local_region_codes": sorted([*counties_cities, province.code]),
        # T01, T09: local county or city code (an institution's region)
        "local_county_city_codes": counties_cities,
        # T09: first two digits another province in regions.csv
        "other_province_prefixes": [p for p in province_prefixes if p != province.code[:2]],
        # T01: institutions.csv
        "institution_codes": sorted({i["fixmedins_code"] for i in ref.institutions}),
        # F03: matters.csv rows applying at a region (see applicable_matters below)
        "applicable_matters": applicable_matters(ref),
    }


def applicable_matters(ref) -> dict[str, list[str]]:
    """Region key -> matter codes with a matters.csv row applying there
    (``Reference.applicable_matters``).  A case's region is looked up as the
    code itself, else its first two digits, else "" — which reproduces
    ``applicable_matters`` for any code: a code outside regions.csv with the
    local prefix gets the province's rows, any other code only the general
    rows."""
    out = {code: sorted(ref.applicable_matters(code)) for code in ref.regions}
    out[ref.province.code[:2]] = sorted(ref.applicable_matters(ref.province.code))
    out[""] = sorted(ref.applicable_matters(""))
    return dict(sorted(out.items()))
