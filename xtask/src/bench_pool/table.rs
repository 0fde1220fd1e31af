//! The table of `cargo xtask bench-pool`: one row per measurement (in CPython's order, then
//! pool-ref-only rows), each side's median over the rounds, and the per-round speedup with
//! its spread, checked against the project's targets.

use std::collections::BTreeMap;

use serde_json::Value;

use super::measure::Round;

/// A row: the benchmark, its worker count, and CPython's start method (empty: pool-ref
/// only).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RowKey {
    bench: String,
    procs: i64,
    method: String,
}

/// One row's values over the rounds.
#[derive(Default)]
struct RowValues {
    rust: Vec<f64>,
    cpython: Vec<f64>,
    /// How many times better pool-ref is, per round.
    ratio: Vec<f64>,
}

/// Prints the table (header and rows, then the 16 MiB row) and returns how many targets
/// were missed.
pub fn print(rounds: &[Round]) -> usize {
    println!(
        "{:38} {:8} {:>14} {:>14} {:>22}  target",
        "measurement", "unit", "pool-ref", "cpython", "speedup"
    );
    let Some(first) = rounds.first() else {
        return 0;
    };
    let rows = row_keys(first);
    let values = collect(rounds, &rows);
    let mut missed = 0;
    for row in &rows {
        missed += print_row(first, row, &values[row]);
    }
    missed + print_bulk_share(rounds)
}

/// Row key of a measurement line: bench and worker count.
fn key(line: &Value) -> (String, i64) {
    (
        line["bench"].as_str().unwrap_or("?").to_owned(),
        line["procs"].as_i64().unwrap_or(0),
    )
}

/// Rows in CPython's order (bench, procs, method), then pool-ref-only rows.
fn row_keys(first: &Round) -> Vec<RowKey> {
    let mut rows: Vec<RowKey> = Vec::new();
    for line in &first.cpython {
        let (bench, procs) = key(line);
        let method = line["method"].as_str().unwrap_or("").to_owned();
        rows.push(RowKey {
            bench,
            procs,
            method,
        });
    }
    for line in &first.rust {
        let (bench, procs) = key(line);
        if !rows.iter().any(|r| r.bench == bench && r.procs == procs) {
            rows.push(RowKey {
                bench,
                procs,
                method: String::new(),
            });
        }
    }
    rows
}

/// Every row's values over the rounds; a ratio only where both sides measured it.
fn collect(rounds: &[Round], rows: &[RowKey]) -> BTreeMap<RowKey, RowValues> {
    let mut per_row: BTreeMap<RowKey, RowValues> = BTreeMap::new();
    for round in rounds {
        for row in rows {
            let find = |lines: &[Value], method: Option<&str>| {
                lines
                    .iter()
                    .find(|l| {
                        key(l) == (row.bench.clone(), row.procs)
                            && method.is_none_or(|m| l["method"].as_str() == Some(m))
                    })
                    .and_then(|l| Some((l["value"].as_f64()?, l["unit"].as_str()?.to_owned())))
            };
            let r = find(&round.rust, None);
            let c = if row.method.is_empty() {
                None
            } else {
                find(&round.cpython, Some(&row.method))
            };
            let entry = per_row.entry(row.clone()).or_default();
            if let Some((rv, _)) = &r {
                entry.rust.push(*rv);
            }
            if let Some((cv, unit)) = &c {
                entry.cpython.push(*cv);
                if let Some((rv, _)) = &r {
                    // Throughput: higher is better; times: lower is.
                    entry.ratio.push(if unit.ends_with("/s") {
                        rv / cv
                    } else {
                        cv / rv
                    });
                }
            }
        }
    }
    per_row
}

/// The speedup pool-ref must reach on a row, if the project set one.
fn target(row: &RowKey) -> Option<f64> {
    match (row.bench.as_str(), row.procs, row.method.as_str()) {
        ("map_cs1", _, "fork") => Some(10.0),
        ("apply_rtt", _, "fork") => Some(5.0),
        ("start_shutdown", 2, "fork") => Some(1.0),
        ("bytes_16m_rtt", _, "fork") => Some(1.0),
        _ => None,
    }
}

/// Prints one row; returns 1 when it misses its target.
fn print_row(first: &Round, row: &RowKey, values: &RowValues) -> usize {
    let line = first
        .rust
        .iter()
        .chain(&first.cpython)
        .find(|l| key(l) == (row.bench.clone(), row.procs));
    let unit = line
        .and_then(|l| l["unit"].as_str())
        .unwrap_or("")
        .replace("us", "µs");
    let tasks = line.and_then(|l| l["tasks"].as_i64());
    let speed = median(values.ratio.clone());
    let mut missed = 0;
    let verdict = match target(row) {
        Some(t) if speed >= t => format!("≥{t}× met"),
        Some(t) => {
            missed = 1;
            format!("≥{t}× MISSED")
        }
        None => String::new(),
    };
    println!(
        "{:38} {:8} {:>14} {:>14} {:>22}  {verdict}",
        label(&row.bench, row.procs, &row.method, tasks),
        unit,
        num(median(values.rust.clone())),
        num(median(values.cpython.clone())),
        if values.ratio.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "{:.2}×{}",
                speed,
                spread(&values.ratio, |x| format!("{x:.2}"))
            )
        },
    );
    missed
}

/// The 16 MiB round trip against the raw pipe bandwidth measured in the same run (the better
/// of default and enlarged pipes), per round. Prints its row when measured; returns 1 when
/// it misses its target of half the raw bandwidth.
fn print_bulk_share(rounds: &[Round]) -> usize {
    let value = |lines: &[Value], bench: &str| {
        lines
            .iter()
            .find(|l| l["bench"].as_str() == Some(bench))
            .and_then(|l| l["value"].as_f64())
    };
    let of_raw: Vec<f64> = rounds
        .iter()
        .filter_map(|round| {
            let pool = value(&round.rust, "bytes_16m_rtt")?;
            let raw = [
                value(&round.rust, "pipe_16m_rtt"),
                value(&round.rust, "pipe_16m_rtt_1m"),
            ]
            .into_iter()
            .flatten()
            .reduce(f64::max)?;
            Some(pool / raw)
        })
        .collect();
    if of_raw.is_empty() {
        return 0;
    }
    let share = median(of_raw.clone());
    let met = share >= 0.5;
    println!(
        "{:38} {:8} {:>14} {:>14} {:>22}  {}",
        "16 MiB round trip ÷ best raw pipe",
        "",
        format!("{share:.2}"),
        "",
        spread(&of_raw, |x| format!("{x:.2}")).trim().to_owned(),
        if met { "≥0.5 met" } else { "≥0.5 MISSED" }
    );
    usize::from(!met)
}

/// What a row measures, in words (`[method]` when CPython's start method is not fork).
fn label(bench: &str, procs: i64, method: &str, tasks: Option<i64>) -> String {
    let k = tasks.map_or_else(|| "?".to_owned(), |t| format!("{}k", t / 1000));
    let base = match bench {
        "start_shutdown" => format!("start+close/join N={procs}"),
        "start_apply_shutdown" => format!("start+1 apply+close/join N={procs}"),
        "apply_rtt" => "apply() round trip, Pool(2)".into(),
        "map_cs1" => format!("map {k}, chunksize=1"),
        "map_default" => format!("map {k}, default chunksize"),
        "imap_unordered_cs1" => format!("imap_unordered {k}, cs=1"),
        "apply_async_cb" => format!("apply_async+callback {k}"),
        "pipe_rtt" => "raw pipe RTT, 1 byte".into(),
        "seqpacket_rtt" => "raw seqpacket RTT, 1 byte".into(),
        "bytes_16m_rtt" => "apply() 16 MiB bytes round trip".into(),
        "pipe_16m_rtt" => "raw pipe 16 MiB round trip".into(),
        "pipe_16m_rtt_1m" => "raw pipe 16 MiB RTT, 1 MiB pipes".into(),
        other => other.into(),
    };
    if method.is_empty() || method == "fork" {
        base
    } else {
        format!("{base} [{method}]")
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A figure with as many decimals as it deserves (thousands separated from 10,000 on).
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v >= 10_000.0 {
        let digits = format!("{:.0}", v);
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        out
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else if v >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// ` (min–max)` over the rounds, when there is more than one.
fn spread(v: &[f64], f: fn(f64) -> String) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.len() > 1 {
        format!(" ({}–{})", f(lo), f(hi))
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn figures_get_the_decimals_they_deserve() {
        assert_eq!(num(123_456.4), "123,456");
        assert_eq!(num(1234.56), "1234.6");
        assert_eq!(num(12.345), "12.35"); // 12.345 is 12.3449… in binary
        assert_eq!(num(1.5), "1.500");
        assert_eq!(num(f64::NAN), "-");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
        assert_eq!(spread(&[1.0], |x| format!("{x}")), "");
        assert_eq!(spread(&[2.0, 1.0, 3.0], |x| format!("{x}")), " (1–3)");
    }

    #[test]
    fn rows_follow_cpython_then_pool_ref_only_rows_and_ratios_favour_pool_ref() {
        let round = Round {
            rust: vec![
                json!({"bench": "apply_rtt", "procs": 2, "value": 10.0, "unit": "us"}),
                json!({"bench": "pipe_rtt", "procs": 0, "value": 5.0, "unit": "us"}),
            ],
            cpython: vec![
                json!({"bench": "apply_rtt", "procs": 2, "method": "fork", "value": 50.0, "unit": "us"}),
                json!({"bench": "map_cs1", "procs": 4, "method": "fork", "value": 100.0, "unit": "tasks/s"}),
            ],
        };
        let rows = row_keys(&round);
        let names: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.bench.as_str(), r.method.as_str()))
            .collect();
        assert_eq!(
            names,
            [("apply_rtt", "fork"), ("map_cs1", "fork"), ("pipe_rtt", "")]
        );
        let values = collect(std::slice::from_ref(&round), &rows);
        assert_eq!(values[&rows[0]].ratio, [5.0]);
        assert!(
            values[&rows[1]].ratio.is_empty(),
            "pool-ref did not measure map_cs1"
        );
        assert_eq!(values[&rows[2]].rust, [5.0]);
        assert_eq!(target(&rows[0]), Some(5.0));
        assert_eq!(
            label("map_cs1", 4, "spawn", Some(20_000)),
            "map 20k, chunksize=1 [spawn]"
        );
    }
}
