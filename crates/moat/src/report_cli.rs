//! `moat report` and `moat chargeback`: spend, tokens and savings from the admin API's
//! reports, as a table, CSV or JSON; and the monthly chargeback CSV.

use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::admin_client::{AdminApi, ServerArgs, text};

/// How `moat report` prints.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Group by team, user, key, model, deployment, day or hour; several with commas
    /// (`model,day`). Without it, one total.
    #[arg(long)]
    by: Option<String>,
    /// From this date (`2026-11-01`, midnight in `--tz`) or RFC 3339 time; default: this
    /// month's start.
    #[arg(long)]
    from: Option<String>,
    /// Up to this date or time; default: now.
    #[arg(long)]
    to: Option<String>,
    /// Only this team's usage.
    #[arg(long)]
    team: Option<String>,
    /// Only this model's usage.
    #[arg(long)]
    model: Option<String>,
    /// Show only the largest rows by cost (the top consumers).
    #[arg(long)]
    top: Option<usize>,
    /// table, csv or json.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The IANA time zone dates are in, e.g. `Europe/Paris` (default UTC).
    #[arg(long)]
    tz: Option<String>,
}

/// The columns a report shows; with self-hosted GPU pools, also the cost at measured
/// throughput.
fn columns(report: &Value) -> Vec<(&'static str, &'static str)> {
    let mut columns = FIGURES.to_vec();
    if report["total"].get("measured_cost_usd").is_some() {
        columns.insert(5, ("MEASURED", "measured_cost_usd"));
    }
    columns
}

const FIGURES: [(&str, &str); 8] = [
    ("REQUESTS", "requests"),
    ("ERRORS", "errors"),
    ("INPUT", "input_tokens"),
    ("OUTPUT", "output_tokens"),
    ("COST", "cost_usd"),
    ("REFERENCE", "reference_cost_usd"),
    ("SAVINGS", "savings_usd"),
    ("P95 MS", "latency_p95_ms"),
];

pub(crate) async fn report(server: &ServerArgs, args: ReportArgs) -> anyhow::Result<()> {
    let api = AdminApi::new(server)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    let optional = [
        ("by", &args.by),
        ("from", &args.from),
        ("to", &args.to),
        ("team", &args.team),
        ("model", &args.model),
        ("tz", &args.tz),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    if let Some(top) = args.top {
        query.push(("limit", top.to_string()));
    }
    let report = api.send(api.http.get(api.url("reports/usage")).query(&query)).await?;
    let by: Vec<String> =
        report["by"].as_array().into_iter().flatten().filter_map(|d| d.as_str().map(str::to_owned)).collect();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => {
            let columns = columns(&report);
            let references = reference_models(&report);
            let mut header: Vec<String> = by.clone();
            header.extend(columns.iter().map(|(_, field)| (*field).to_owned()));
            for model in &references {
                header.push(cell(&Value::String(format!("{model}_cost_usd"))));
                header.push(cell(&Value::String(format!("{model}_savings_usd"))));
            }
            println!("{}", header.join(","));
            for row in report["data"].as_array().into_iter().flatten() {
                let mut cells: Vec<String> = by.iter().map(|d| cell(&row[d.as_str()])).collect();
                cells.extend(columns.iter().map(|(_, field)| cell(&row[*field]).trim_start_matches('$').to_owned()));
                for comparison in row["references"].as_array().into_iter().flatten() {
                    cells.push(cell(&comparison["cost_usd"]).replace('$', ""));
                    cells.push(cell(&comparison["savings_usd"]).replace('$', ""));
                }
                println!("{}", cells.join(","));
            }
        }
        Format::Table => print_table(&report, &by),
    }
    Ok(())
}

/// The reference models each row is compared with, when there are several (each row then
/// lists them in this order).
fn reference_models(report: &Value) -> Vec<String> {
    report["total"]["references"].as_array().into_iter().flatten().map(|r| text(&r["model"])).collect()
}

fn print_table(report: &Value, by: &[String]) {
    let reference = &report["reference"];
    println!(
        "{} to {}{}",
        text(&report["from"]),
        text(&report["to"]),
        if reference.is_null() {
            String::new()
        } else {
            format!(", reference {} ({})", text(&reference["model"]), text(&reference["provider"]))
        }
    );
    let label = |row: &Value| -> String {
        by.iter()
            .map(|d| {
                let name = &row[format!("{d}_name")];
                if name.is_null() {
                    text(&row[d.as_str()])
                } else {
                    format!("{} ({})", text(name), text(&row[d.as_str()]))
                }
            })
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let mut rows: Vec<(String, &Value)> =
        report["data"].as_array().into_iter().flatten().map(|row| (label(row), row)).collect();
    rows.push(("TOTAL".to_owned(), &report["total"]));
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(5).clamp(5, 60);
    let columns = columns(report);
    let heading = if by.is_empty() { String::new() } else { by.join(" / ").to_uppercase() };
    print!("{heading:<width$}");
    for (title, _) in &columns {
        print!(" {title:>12}");
    }
    println!();
    for (label, row) in rows {
        print!("{label:<width$}");
        for (_, field) in &columns {
            print!(" {:>12}", text(&row[*field]));
        }
        println!();
    }
    // With several references, the total at each (the REFERENCE column is the first).
    for comparison in report["total"]["references"].as_array().into_iter().flatten() {
        println!(
            "at {} ({}): {}, savings {}",
            text(&comparison["model"]),
            text(&comparison["provider"]),
            text(&comparison["cost_usd"]),
            text(&comparison["savings_usd"]),
        );
    }
    for pool in report["pools"].as_array().into_iter().flatten() {
        println!(
            "pool {}: {} GPU-hours, {}, {} tokens ({}% of rated throughput): {} per million tokens measured",
            text(&pool["deployment"]),
            text(&pool["gpu_hours"]),
            text(&pool["period_cost_usd"]),
            text(&pool["tokens"]),
            text(&pool["utilisation_percent"]),
            text(&pool["measured_cost_per_mtok_usd"]),
        );
    }
}

fn cell(value: &Value) -> String {
    let shown = match value {
        Value::Null => String::new(),
        other => text(other),
    };
    if shown.contains([',', '"', '\n']) { format!("\"{}\"", shown.replace('"', "\"\"")) } else { shown }
}

/// `moat chargeback`: the monthly per-team CSV, as the server writes it.
pub(crate) async fn chargeback(server: &ServerArgs, month: Option<String>, tz: Option<String>) -> anyhow::Result<()> {
    let api = AdminApi::new(server)?;
    let mut request = api.authorized(api.http.get(api.url("reports/chargeback")));
    if let Some(month) = month {
        request = request.query(&[("month", month)]);
    }
    if let Some(tz) = tz {
        request = request.query(&[("tz", tz)]);
    }
    let response = request.send().await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        let error: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        anyhow::bail!(
            "moat refused ({status}, {}): {}",
            text(&error.pointer("/error/code").cloned().unwrap_or(Value::Null)),
            text(&error.pointer("/error/message").cloned().unwrap_or(Value::Null))
        );
    }
    print!("{body}");
    Ok(())
}
