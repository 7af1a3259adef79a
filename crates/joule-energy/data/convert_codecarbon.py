#!/usr/bin/env python3
"""Convert the codecarbon wheel's data into joule-energy's compact data files.

Usage (from this folder):
    pip download codecarbon==3.3.2 --no-deps -d /tmp/cc && unzip -qo /tmp/cc/codecarbon-3.3.2-py3-none-any.whl -d /tmp/cc
    python3 convert_codecarbon.py /tmp/cc/codecarbon

Writes cpu_tdp.tsv (CPU model -> TDP in W) and carbon_intensity.json (g CO2e/kWh per country, sub-national region
and cloud region). codecarbon is MIT-licensed (c) the CodeCarbon authors; its data files name their own sources,
which are copied into the output. Facts only are converted: no code is copied.
"""
import csv
import json
import sys
from pathlib import Path

CC_VERSION = "3.3.2"
# ISO 3166-1 alpha-2 codes (so users may type "FR" as well as "FRA"): Debian's iso-codes package (4.15.0).
ISO_CODES_JSON = Path("/usr/share/iso-codes/json/iso_3166-1.json")
LBS_MWH_TO_G_KWH = 0.45359237  # 1 lb/MWh = 0.45359237 g/kWh (codecarbon's EmissionsPerKWh.from_lbs_per_mWh)
# codecarbon's _region_energy_mix_to_emissions_rate factors, kg/kWh (responsibleproblemsolving/energy-usage)
CANADA_FACTORS = {"coal": 0.995725971, "petroleum": 0.8166885263, "naturalGas": 0.7438415916}


def main(cc: Path, out: Path) -> None:
    data = cc / "data"
    # --- CPU TDP table -------------------------------------------------------------------------------------------
    rows, skipped = [], []
    with open(data / "hardware" / "cpu_power.csv", newline="", encoding="utf-8-sig") as f:
        for r in csv.DictReader(f):
            name = " ".join(r["Name"].split())
            try:
                rows.append((name, float(r["TDP"])))
            except ValueError:  # e.g. "27.29.5" (a range typed without a separator): not guessed, dropped
                skipped.append(f"{name} ({r['TDP']!r})")
    with open(out / "cpu_tdp.tsv.tmp", "w", encoding="utf-8") as f:
        f.write(f"# CPU model name<TAB>TDP in W. From codecarbon {CC_VERSION} (MIT licence), "
                "codecarbon/data/hardware/cpu_power.csv (scraped from Intel ARK and AMD product pages).\n")
        f.write("# Converted by crates/joule-energy/data/convert_codecarbon.py; whitespace in names collapsed.\n")
        f.write(f"# Dropped (TDP not a number): {'; '.join(skipped)}\n")
        for name, tdp in rows:
            f.write(f"{name}\t{tdp:g}\n")
    (out / "cpu_tdp.tsv.tmp").rename(out / "cpu_tdp.tsv")

    # --- Carbon intensity ------------------------------------------------------------------------------------------
    pi = data / "private_infra"
    per_source = json.load(open(pi / "carbon_intensity_per_source.json"))
    alpha2 = {}
    if ISO_CODES_JSON.exists():
        alpha2 = {c["alpha_3"]: c["alpha_2"] for c in json.load(open(ISO_CODES_JSON))["3166-1"]}
    countries = {}
    for iso, v in json.load(open(pi / "global_energy_mix.json")).items():
        countries[iso.upper()] = {"name": v["country_name"], "alpha2": alpha2.get(iso.upper(), ""),
                                  "g_per_kwh": round(float(v["carbon_intensity"]), 3), "year": v["year"]}
    regions = {}
    usa = json.load(open(pi / "2023" / "usa_emissions.json"))
    src = usa["_source"]
    regions["USA"] = {"source": f"{src['name']} ({src['url']}), via codecarbon {CC_VERSION}",
                      "regions": {}}
    for name, v in usa.items():
        if name.startswith("_"):
            continue
        regions["USA"]["regions"][name.lower()] = {
            "g_per_kwh": round(v["emissions"] * LBS_MWH_TO_G_KWH, 3), "year": src["year"],
            "aliases": [v["regionCode"].lower()]}
    can = json.load(open(pi / "2023" / "canada_energy_mix.json"))
    regions["CAN"] = {"source": f"Canada provincial generation mix 2023 (codecarbon {CC_VERSION} canada_energy_mix.json)"
                      ", intensity = fossil shares x (coal 995.7, petroleum 816.7, natural gas 743.8 g/kWh) as "
                      "codecarbon computes it", "regions": {}}
    for name, mix in can.items():
        g = sum(mix.get(k, 0.0) / mix["total"] * f for k, f in CANADA_FACTORS.items()) * 1000.0
        regions["CAN"]["regions"][name.lower()] = {"g_per_kwh": round(g, 3), "year": 2023, "aliases": []}
    chn = json.load(open(pi / "2023" / "china_provincial_emissions.json"))
    regions["CHN"] = {"source": f"{chn['metadata']['source']} {chn['metadata']['source_url']} (CO2 only), "
                      f"via codecarbon {CC_VERSION}", "regions": {}}
    for code, v in chn["data"].items():
        names = [n.lower() for n in v.get("names", [])]
        main_name = v["description"].lower()
        aliases = sorted(set([code.lower()] + [n for n in names if n != main_name]))
        regions["CHN"]["regions"][main_name] = {"g_per_kwh": v["emission_factor"], "year": v["year"],
                                                "aliases": aliases}
    nordic = json.load(open(pi / "nordic_emissions.json"))
    for zone, v in nordic["data"].items():
        iso = {"SE": "SWE", "NO": "NOR", "FI": "FIN"}[zone[:2]]
        entry = regions.setdefault(iso, {"source": f"{nordic['metadata']['source']} via codecarbon {CC_VERSION} "
                                                   "nordic_emissions.json", "regions": {}})
        entry["regions"][zone.lower()] = {"g_per_kwh": v["emission_factor"], "year": v["year"], "aliases": []}
    cloud = {}
    with open(data / "cloud" / "impact.csv", newline="", encoding="utf-8-sig") as f:
        for r in csv.DictReader(f):
            cloud.setdefault(r["provider"].lower(), {})[r["region"].lower()] = {
                "g_per_kwh": float(r["impact"]), "country_iso": r["countryIsoCode"], "country_name": r["country_name"],
                "source": r["source"]}
    doc = {
        "_about": f"Grid carbon intensity, g CO2e/kWh, converted from codecarbon {CC_VERSION} (MIT licence) by "
                  "crates/joule-energy/data/convert_codecarbon.py. Countries: codecarbon global_energy_mix.json "
                  "(Our World in Data / Ember, the year given per country); alpha-2 codes from Debian iso-codes 4.15.0.",
        "world_average": {"g_per_kwh": float(per_source["world_average"]), "source": per_source["world_average_source"],
                          "year": 2019},
        "countries": dict(sorted(countries.items())),
        "regions": regions,
        "cloud": cloud,
    }
    tmp = out / "carbon_intensity.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    tmp.rename(out / "carbon_intensity.json")
    print(f"{len(rows)} CPUs, {len(countries)} countries, "
          f"{sum(len(r['regions']) for r in regions.values())} regions, {sum(len(c) for c in cloud.values())} cloud")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent)
