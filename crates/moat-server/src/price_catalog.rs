//! The price catalog: list prices of hosted models and hourly rates of GPUs, with their sources.
//!
//! Cost needs a price for every deployment, and savings need the list price of the frontier
//! models a company compares itself with. moat ships `catalog/prices.toml` (each row: model,
//! provider, prices per million tokens, the date and the source it was read from) built into
//! the binary; `[[prices]]` rows in the config add entries or replace the shipped row of the
//! same model and provider (a negotiated rate, a new model).

use moat_core::Price;
use serde::Deserialize;

use crate::config::raw::PriceRowConfig;

/// The catalog shipped with this moat.
const SHIPPED: &str = include_str!("../../../catalog/prices.toml");

/// Whether a model's weights are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A closed model from a frontier lab, the reference savings are measured against.
    Frontier,
    /// Published weights, priced as the named host sells them.
    OpenWeight,
}

impl ModelKind {
    /// The name the catalog uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Frontier => "frontier",
            ModelKind::OpenWeight => "open-weight",
        }
    }
}

/// One model's list price at one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogPrice {
    /// The provider's model name.
    pub model: String,
    /// Who sells it at this price.
    pub provider: String,
    /// Frontier or open-weight.
    pub kind: ModelKind,
    /// The price, in micro-dollars per million tokens.
    pub price: Price,
    /// A price band (e.g. `prompt<=100k`) when the provider has several.
    pub tier: Option<String>,
    /// The date the source showed.
    pub as_of: String,
    /// Where the figures were read.
    pub source: String,
}

/// A reference model savings are measured against: a catalog row the config chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The model's name in the catalog.
    pub model: String,
    /// Its provider.
    pub provider: String,
    /// Its list price.
    pub price: Price,
}

/// One GPU's hourly rate at one provider, for self-hosted cost models.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuRate {
    /// The GPU, e.g. `H100 80GB SXM`.
    pub gpu: String,
    /// Who rents it at this rate.
    pub provider: String,
    /// Micro-dollars per GPU-hour.
    pub per_hour: u64,
    /// The date the source showed.
    pub as_of: String,
}

/// Every known price.
#[derive(Debug, Clone, Default)]
pub struct PriceCatalog {
    prices: Vec<CatalogPrice>,
    gpus: Vec<GpuRate>,
}

/// A catalog file's rows, as written.
#[derive(Debug, Deserialize)]
struct RawCatalog {
    #[serde(default)]
    price: Vec<PriceRowConfig>,
    #[serde(default)]
    gpu: Vec<RawGpu>,
}

#[derive(Debug, Deserialize)]
struct RawGpu {
    gpu: String,
    provider: String,
    usd_per_hour: f64,
    #[serde(default)]
    as_of: String,
}

/// Dollars to micro-dollars, for prices from $0 to $1,000,000.
fn micros(dollars: f64, what: &str) -> Result<u64, String> {
    if !(dollars.is_finite() && (0.0..=1_000_000.0).contains(&dollars)) {
        return Err(format!("{what}: {dollars} is not a price from 0 to 1000000 dollars"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "range checked above")]
    let micros = (dollars * 1_000_000.0).round() as u64;
    Ok(micros)
}

impl PriceRowConfig {
    fn into_price(self) -> Result<CatalogPrice, String> {
        let what = |field: &str| format!("{} at {}: {field}", self.model, self.provider);
        let kind = match self.kind.as_str() {
            "frontier" => ModelKind::Frontier,
            "open-weight" => ModelKind::OpenWeight,
            other => return Err(format!("{}: kind `{other}` is not one of `frontier`, `open-weight`", what("kind"))),
        };
        // A provider without prompt caching bills cached tokens as input.
        let input = micros(self.input_per_mtok, &what("input_per_mtok"))?;
        let price = Price {
            input,
            output: micros(self.output_per_mtok, &what("output_per_mtok"))?,
            cache_read: self.cache_read_per_mtok.map_or(Ok(input), |p| micros(p, &what("cache_read_per_mtok")))?,
            cache_write: self.cache_write_per_mtok.map_or(Ok(input), |p| micros(p, &what("cache_write_per_mtok")))?,
            reasoning: None,
        };
        Ok(CatalogPrice {
            model: self.model,
            provider: self.provider,
            kind,
            price,
            tier: self.tier,
            as_of: self.as_of,
            source: self.source,
        })
    }
}

impl PriceCatalog {
    /// The shipped catalog with `overrides` applied: each replaces the row of the same model,
    /// provider and tier, or is added.
    pub fn load(overrides: Vec<PriceRowConfig>) -> Result<PriceCatalog, String> {
        let mut catalog = PriceCatalog::parse(SHIPPED).map_err(|e| format!("the shipped price catalog: {e}"))?;
        for raw in overrides {
            let row = raw.into_price()?;
            let same = |p: &CatalogPrice| p.model == row.model && p.provider == row.provider && p.tier == row.tier;
            match catalog.prices.iter_mut().find(|p| same(p)) {
                Some(existing) => *existing = row,
                None => catalog.prices.push(row),
            }
        }
        Ok(catalog)
    }

    /// Parses a catalog file.
    pub fn parse(text: &str) -> Result<PriceCatalog, String> {
        let raw: RawCatalog = toml::from_str(text).map_err(|e| e.to_string())?;
        let prices = raw.price.into_iter().map(PriceRowConfig::into_price).collect::<Result<Vec<_>, _>>()?;
        let gpus = raw
            .gpu
            .into_iter()
            .map(|g| {
                let per_hour = micros(g.usd_per_hour, &format!("{} at {}: usd_per_hour", g.gpu, g.provider))?;
                Ok(GpuRate { gpu: g.gpu, provider: g.provider, per_hour, as_of: g.as_of })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(PriceCatalog { prices, gpus })
    }

    /// A model's price at a provider: the untiered row, or else the first listed.
    pub fn get(&self, model: &str, provider: &str) -> Option<&CatalogPrice> {
        let rows = || self.prices.iter().filter(|p| p.model == model && p.provider == provider);
        rows().find(|p| p.tier.is_none()).or_else(|| rows().next())
    }

    /// Every price row.
    pub fn prices(&self) -> &[CatalogPrice] {
        &self.prices
    }

    /// Every GPU rate.
    pub fn gpus(&self) -> &[GpuRate] {
        &self.gpus
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_loads_with_sources_for_every_row() {
        let catalog = PriceCatalog::load(Vec::new()).expect("the shipped catalog parses");
        assert!(catalog.prices().len() >= 100, "{} rows", catalog.prices().len());
        assert!(catalog.gpus().len() >= 20);
        for row in catalog.prices() {
            assert!(!row.source.is_empty() && !row.as_of.is_empty(), "{} at {} has no source", row.model, row.provider);
            assert!(row.price.output > 0, "{} at {} has no output price", row.model, row.provider);
        }
        let of_kind = |kind: ModelKind| catalog.prices().iter().filter(|p| p.kind == kind).count();
        assert!(of_kind(ModelKind::Frontier) > 0 && of_kind(ModelKind::OpenWeight) > 0);
    }

    #[test]
    fn dollars_become_exact_micro_dollars_and_missing_cache_prices_are_input() {
        let catalog = PriceCatalog::parse(
            r#"
            [[price]]
            model = "m"
            provider = "p"
            kind = "frontier"
            input_per_mtok = 3.0
            output_per_mtok = 15.0
            cache_read_per_mtok = 0.3
            [[gpu]]
            gpu = "H100"
            provider = "cloud"
            usd_per_hour = 2.69
            "#,
        )
        .expect("parses");
        let price = catalog.get("m", "p").expect("found").price;
        assert_eq!(
            price,
            Price {
                input: 3_000_000,
                output: 15_000_000,
                cache_read: 300_000,
                cache_write: 3_000_000,
                reasoning: None
            }
        );
        assert_eq!(catalog.gpus()[0].per_hour, 2_690_000);
        assert!(catalog.get("m", "other").is_none());
    }

    #[test]
    fn overrides_replace_the_same_row_or_add_one() {
        let shipped = PriceCatalog::load(Vec::new()).expect("shipped");
        let first = shipped.prices()[0].clone();
        let row = |model: &str, input: f64| PriceRowConfig {
            model: model.into(),
            provider: first.provider.clone(),
            kind: "open-weight".into(),
            input_per_mtok: input,
            output_per_mtok: 1.0,
            cache_read_per_mtok: None,
            cache_write_per_mtok: None,
            tier: first.tier.clone(),
            as_of: "2026-11-28".into(),
            source: "negotiated".into(),
            other: Default::default(),
        };
        let catalog = PriceCatalog::load(vec![row(&first.model, 0.5), row("our-fine-tune", 0.1)]).expect("loads");
        assert_eq!(catalog.prices().len(), shipped.prices().len() + 1);
        let replaced = catalog
            .prices()
            .iter()
            .find(|p| p.model == first.model && p.provider == first.provider && p.tier == first.tier);
        assert_eq!(replaced.map(|p| p.price.input), Some(500_000));
        assert!(PriceCatalog::load(vec![row("bad", -1.0)]).is_err(), "a negative price is refused");
    }
}
