//! Grid carbon intensity (g CO2e per kWh), offline.
//!
//! Data (`data/carbon_intensity.json`, converted from the codecarbon 3.3.2 wheel, MIT licence, by
//! `data/convert_codecarbon.py`):
//! * 213 countries by ISO 3166-1 alpha-3 or alpha-2 code (alpha-2 from Debian's iso-codes 4.15.0): Our World in Data / Ember generation mixes (2022 for most; the year is
//!   kept per country);
//! * sub-national regions: US states (EPA eGRID 2023, CO2e), Canadian provinces (2023 generation mix × per-source
//!   factors, as CodeCarbon computes it), Chinese provinces (MEE/NBS 2023, CO2 only), Nordic bidding zones
//!   (ENTSO-E 2025 mixes);
//! * cloud regions (Google Cloud's published region figures, 40 regions);
//! * the world average, 475 g/kWh (IEA Global Energy & CO2 Status Report 2019).
//!
//! Lookup order: a user override, then the cloud region, then the sub-national region, then the country, then the
//! world average. [`CarbonIntensity::level`] records which level answered and `notes` every miss on the way.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The world average used as the last fallback, g CO2e/kWh (IEA 2019, as CodeCarbon uses).
pub const WORLD_AVERAGE_G_PER_KWH: f64 = 475.0;

static DATA_JSON: &str = include_str!("../data/carbon_intensity.json");

#[derive(Deserialize)]
struct Data {
    world_average: WorldAverage,
    countries: BTreeMap<String, Country>,
    regions: BTreeMap<String, RegionSet>,
    cloud: BTreeMap<String, BTreeMap<String, CloudRegion>>,
}

#[derive(Deserialize)]
struct WorldAverage {
    g_per_kwh: f64,
    source: String,
    year: u32,
}

#[derive(Deserialize)]
struct Country {
    name: String,
    /// ISO 3166-1 alpha-2 code ("" when unknown).
    #[serde(default)]
    alpha2: String,
    g_per_kwh: f64,
    year: u32,
}

#[derive(Deserialize)]
struct RegionSet {
    source: String,
    regions: BTreeMap<String, Region>,
}

#[derive(Deserialize)]
struct Region {
    g_per_kwh: f64,
    year: u32,
    aliases: Vec<String>,
}

#[derive(Deserialize)]
struct CloudRegion {
    g_per_kwh: f64,
    country_iso: String,
    country_name: String,
    source: String,
}

fn data() -> Option<&'static Data> {
    static DATA: OnceLock<Option<Data>> = OnceLock::new();
    DATA.get_or_init(|| serde_json::from_str(DATA_JSON).ok()).as_ref()
}

const COUNTRY_SOURCE: &str = "Our World in Data / Ember electricity mix, via codecarbon 3.3.2 global_energy_mix.json";

/// What to look up. Every field is optional; matching is case-insensitive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntensityQuery {
    /// Country: ISO 3166-1 alpha-3 code ("FRA", "USA"), alpha-2 code ("FR", "US") or English name ("France").
    pub country: Option<String>,
    /// Sub-national region: US state name or code ("california", "CA"), Canadian province, Chinese province
    /// ("beijing", "CN-BJ"), Nordic bidding zone ("SE3").
    pub region: Option<String>,
    /// Cloud provider ("gcp").
    pub cloud_provider: Option<String>,
    /// Cloud region ("us-central1").
    pub cloud_region: Option<String>,
    /// A user-given intensity, g CO2e/kWh, which wins over every table.
    pub override_g_per_kwh: Option<f64>,
}

/// Which level of the lookup answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntensityLevel {
    /// The user's value.
    Override,
    /// A cloud region's published figure.
    CloudRegion,
    /// A sub-national region.
    Region,
    /// A country.
    Country,
    /// The world average.
    World,
}

/// A carbon intensity and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarbonIntensity {
    /// g CO2e per kWh (finite, ≥ 0).
    pub g_per_kwh: f64,
    /// Which level answered.
    pub level: IntensityLevel,
    /// The data's source.
    pub source: String,
    /// The data's year, when known.
    pub year: Option<u32>,
    /// ISO alpha-3 code of the country it applies to, when known.
    pub country_iso: Option<String>,
    /// English name of that country, when known.
    pub country_name: Option<String>,
    /// The region used (sub-national or cloud), when one was.
    pub region: Option<String>,
    /// The cloud provider, when a cloud region answered.
    pub cloud_provider: Option<String>,
    /// Misses on the way (e.g. "region \"atlantis\" not found for USA: country value used").
    pub notes: Vec<String>,
}

fn find_country<'a>(d: &'a Data, q: &str) -> Option<(&'a str, &'a Country)> {
    let up = q.trim().to_uppercase();
    if let Some((k, c)) = d.countries.get_key_value(&up) {
        return Some((k, c));
    }
    let low = q.trim().to_lowercase();
    d.countries
        .iter()
        .find(|(_, c)| c.name.to_lowercase() == low || (up.len() == 2 && c.alpha2 == up))
        .map(|(k, c)| (k.as_str(), c))
}

fn find_region<'a>(set: &'a RegionSet, q: &str) -> Option<(&'a str, &'a Region)> {
    let low = q.trim().to_lowercase();
    set.regions.iter().find(|(name, r)| **name == low || r.aliases.contains(&low)).map(|(k, r)| (k.as_str(), r))
}

/// Looks up the carbon intensity for `q` (see the module documentation for the order). Never fails: the world
/// average is the last answer, and the notes say why it was reached.
pub fn lookup(q: &IntensityQuery) -> CarbonIntensity {
    let mut notes = Vec::new();
    if let Some(g) = q.override_g_per_kwh {
        if g.is_finite() && g >= 0.0 {
            return CarbonIntensity {
                g_per_kwh: g,
                level: IntensityLevel::Override,
                source: "user override".into(),
                year: None,
                country_iso: q.country.as_ref().map(|c| c.trim().to_uppercase()),
                country_name: None,
                region: q.region.clone(),
                cloud_provider: None,
                notes,
            };
        }
        notes.push(format!("override {g} g/kWh ignored: not a finite, non-negative number"));
    }
    let world = |notes: Vec<String>| CarbonIntensity {
        g_per_kwh: WORLD_AVERAGE_G_PER_KWH,
        level: IntensityLevel::World,
        source: data()
            .map(|d| d.world_average.source.clone())
            .unwrap_or_else(|| "IEA Global Energy & CO2 Status Report 2019".into()),
        year: Some(data().map_or(2019, |d| d.world_average.year)),
        country_iso: None,
        country_name: None,
        region: None,
        cloud_provider: None,
        notes,
    };
    let Some(d) = data() else {
        notes.push("built-in carbon table unreadable: world average used".into());
        return world(notes);
    };
    debug_assert_eq!(d.world_average.g_per_kwh, WORLD_AVERAGE_G_PER_KWH);

    if let Some(cr) = q.cloud_region.as_deref().filter(|s| !s.trim().is_empty()) {
        let provider = q.cloud_provider.as_deref().unwrap_or("").trim().to_lowercase();
        let hit = if provider.is_empty() {
            d.cloud.iter().find_map(|(p, regions)| regions.get(&cr.trim().to_lowercase()).map(|r| (p, r)))
        } else {
            d.cloud
                .get_key_value(&provider)
                .and_then(|(p, regions)| regions.get(&cr.trim().to_lowercase()).map(|r| (p, r)))
        };
        match hit {
            Some((p, r)) => {
                return CarbonIntensity {
                    g_per_kwh: r.g_per_kwh,
                    level: IntensityLevel::CloudRegion,
                    source: format!("{p} published region figure ({}), via codecarbon 3.3.2 impact.csv", r.source),
                    year: None,
                    country_iso: Some(r.country_iso.clone()),
                    country_name: Some(r.country_name.clone()),
                    region: Some(cr.trim().to_lowercase()),
                    cloud_provider: Some(p.clone()),
                    notes,
                };
            }
            None => notes.push(format!(
                "cloud region {cr:?} (provider {:?}) not in the table: falling back",
                if provider.is_empty() { "any" } else { &provider }
            )),
        }
    }

    let country = match q.country.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(c) => match find_country(d, c) {
            Some(hit) => Some(hit),
            None => {
                notes.push(format!(
                    "country {c:?} not found (use an ISO 3166-1 code such as \"FRA\" or \"FR\", or an English name)"
                ));
                None
            }
        },
        None => None,
    };

    if let Some(r) = q.region.as_deref().filter(|s| !s.trim().is_empty()) {
        // With a country, look in its regions; without one, accept a region name that is unique across countries.
        let candidates: Vec<(&str, &RegionSet)> = match country {
            Some((iso, _)) => d.regions.get_key_value(iso).map(|(k, s)| (k.as_str(), s)).into_iter().collect(),
            None => d.regions.iter().map(|(k, s)| (k.as_str(), s)).collect(),
        };
        let hits: Vec<(&str, &RegionSet, &str, &Region)> = candidates
            .into_iter()
            .filter_map(|(iso, set)| find_region(set, r).map(|(name, reg)| (iso, set, name, reg)))
            .collect();
        if let [(iso, set, name, reg)] = hits.as_slice() {
            return CarbonIntensity {
                g_per_kwh: reg.g_per_kwh,
                level: IntensityLevel::Region,
                source: set.source.clone(),
                year: Some(reg.year),
                country_iso: Some((*iso).to_owned()),
                country_name: d.countries.get(*iso).map(|c| c.name.clone()),
                region: Some((*name).to_owned()),
                cloud_provider: None,
                notes,
            };
        }
        notes.push(match (hits.len(), country) {
            (0, Some((iso, _))) => format!("region {r:?} not found for {iso}: country value used"),
            (0, None) => format!("region {r:?} not found"),
            _ => format!("region {r:?} is ambiguous without a country"),
        });
    }

    match country {
        Some((iso, c)) => CarbonIntensity {
            g_per_kwh: c.g_per_kwh,
            level: IntensityLevel::Country,
            source: COUNTRY_SOURCE.into(),
            year: Some(c.year),
            country_iso: Some(iso.to_owned()),
            country_name: Some(c.name.clone()),
            region: None,
            cloud_provider: None,
            notes,
        },
        None => {
            if q.country.is_none() {
                notes.push("no country given: world average used".into());
            }
            world(notes)
        }
    }
}

/// Emissions in kg CO2e for `energy_kwh` at `intensity_g_per_kwh`, with the data centre's `pue` (≥ 1; 1.0 means the
/// facility overhead is not counted). Non-finite or negative inputs count as 0, so the result is always finite.
pub fn emissions_kg(energy_kwh: f64, intensity_g_per_kwh: f64, pue: f64) -> f64 {
    let clean = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
    let pue = if pue.is_finite() && pue >= 1.0 { pue } else { 1.0 };
    clean(energy_kwh) * pue * clean(intensity_g_per_kwh) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(country: Option<&str>, region: Option<&str>) -> IntensityQuery {
        IntensityQuery { country: country.map(str::to_owned), region: region.map(str::to_owned), ..Default::default() }
    }

    #[test]
    fn built_in_data_parses_and_has_every_level() {
        let d = data().expect("data/carbon_intensity.json parses");
        assert_eq!(d.world_average.g_per_kwh, WORLD_AVERAGE_G_PER_KWH);
        assert!(d.countries.len() > 200);
        for iso in ["USA", "CAN", "CHN", "SWE", "NOR", "FIN"] {
            assert!(d.regions.contains_key(iso), "{iso}");
        }
        assert!(!d.cloud.is_empty());
    }

    #[test]
    fn levels_and_fallbacks_are_recorded() {
        let fra = lookup(&q(Some("fra"), None));
        assert_eq!(fra.level, IntensityLevel::Country);
        assert_eq!(fra.country_name.as_deref(), Some("France"));
        assert_eq!(lookup(&q(Some("France"), None)).g_per_kwh, fra.g_per_kwh);
        let fr = lookup(&q(Some("fr"), None));
        assert_eq!((fr.country_iso.as_deref(), fr.g_per_kwh), (Some("FRA"), fra.g_per_kwh));

        let ca = lookup(&q(Some("USA"), Some("CA")));
        assert_eq!(ca.level, IntensityLevel::Region);
        assert_eq!(ca.region.as_deref(), Some("california"));
        assert_ne!(ca.g_per_kwh, lookup(&q(Some("USA"), None)).g_per_kwh);

        let unknown = lookup(&q(Some("USA"), Some("atlantis")));
        assert_eq!(unknown.level, IntensityLevel::Country);
        assert!(unknown.notes[0].contains("atlantis"), "{:?}", unknown.notes);

        let nowhere = lookup(&q(Some("XXX"), Some("atlantis")));
        assert_eq!(nowhere.level, IntensityLevel::World);
        assert_eq!(nowhere.g_per_kwh, 475.0);
        assert_eq!(nowhere.notes.len(), 2, "{:?}", nowhere.notes);

        let none = lookup(&IntensityQuery::default());
        assert_eq!((none.level, none.g_per_kwh), (IntensityLevel::World, 475.0));
    }

    #[test]
    fn region_without_country_and_cloud_and_override() {
        let se3 = lookup(&q(None, Some("SE3")));
        assert_eq!((se3.level, se3.country_iso.as_deref()), (IntensityLevel::Region, Some("SWE")));

        let cloud = lookup(&IntensityQuery {
            cloud_provider: Some("gcp".into()),
            cloud_region: Some("europe-west1".into()),
            ..Default::default()
        });
        assert_eq!(cloud.level, IntensityLevel::CloudRegion);
        assert_eq!(cloud.country_iso.as_deref(), Some("BEL"));

        let bad_cloud = lookup(&IntensityQuery {
            cloud_provider: Some("gcp".into()),
            cloud_region: Some("mars-north1".into()),
            country: Some("DEU".into()),
            ..Default::default()
        });
        assert_eq!(bad_cloud.level, IntensityLevel::Country);
        assert!(bad_cloud.notes[0].contains("mars-north1"));

        let o = lookup(&IntensityQuery { override_g_per_kwh: Some(12.5), ..q(Some("FRA"), None) });
        assert_eq!((o.level, o.g_per_kwh), (IntensityLevel::Override, 12.5));
        let bad = lookup(&IntensityQuery { override_g_per_kwh: Some(f64::NAN), ..q(Some("FRA"), None) });
        assert_eq!(bad.level, IntensityLevel::Country);
    }

    #[test]
    fn emissions_arithmetic_is_finite() {
        assert!((emissions_kg(2.0, 500.0, 1.0) - 1.0).abs() < 1e-12);
        assert!((emissions_kg(2.0, 500.0, 1.5) - 1.5).abs() < 1e-12);
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            assert_eq!(emissions_kg(bad, 500.0, 1.0), 0.0);
            assert_eq!(emissions_kg(1.0, bad, 1.0), 0.0);
            assert_eq!(emissions_kg(1.0, 1000.0, bad), 1.0);
        }
    }
}
