//! The HTML report beside each resolved batch (`report/index.html` and its SVG charts): how
//! big people are, which identifiers they have, and the largest people, where over-merging
//! would show first.

use std::fmt::Write as _;

use idgraph_storage::{Location, Store};
use plotters::prelude::*;

use crate::{Error, ResolvePlan, state, uuid_text};

fn report_error(e: impl std::fmt::Display) -> Error {
    Error::Report(format!("cannot draw the report: {e}"))
}

/// One bar chart as SVG text.
fn bar_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    bars: &[(String, f64)],
) -> Result<String, Error> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(report_error)?;
        let top = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1.0) * 1.1;
        let n = bars.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..top)
            .map_err(report_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(report_error)?;
        // Bars drawn one by one, in order (plotters' Histogram groups them in a hash map, which
        // would make the file differ from run to run).
        let fill = RGBColor(46, 110, 180).filled();
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), b.1),
                    ],
                    fill,
                );
                bar.set_margin(0, 0, 6, 6);
                bar
            }))
            .map_err(report_error)?;
        root.present().map_err(report_error)?;
    }
    Ok(svg)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes `report/` under `dir` from `state` (as just committed); returns the page's location.
pub(crate) fn render(
    plan: &ResolvePlan,
    store: &Store,
    dir: &Location,
    state: &state::State,
) -> Result<Location, Error> {
    let Some(index) = &state.index else {
        return Err(Error::NotResolved(plan.root.to_string()));
    };
    let persons = &state.persons;
    let alive: Vec<u32> = (0..persons.ids.len() as u32)
        .filter(|&p| persons.parent[p as usize] == p)
        .collect();

    // People by size.
    let buckets: [(u32, &str); 7] = [
        (1, "1"),
        (2, "2"),
        (3, "3"),
        (4, "4"),
        (5, "5-9"),
        (10, "10-49"),
        (50, "50+"),
    ];
    let mut by_size = [0u64; 7];
    for &p in &alive {
        let members = persons.members[p as usize];
        let at = buckets.iter().rposition(|b| members >= b.0).unwrap_or(0);
        by_size[at] += 1;
    }
    let sizes: Vec<(String, f64)> = buckets
        .iter()
        .zip(by_size)
        .map(|(b, n)| (b.1.to_owned(), n as f64))
        .collect();

    // Identifiers per person, by kind.
    let mut per_kind = vec![0u64; plan.mapping.vertices.len()];
    for segment in &state.segments {
        for &label in &segment.labels {
            per_kind[label as usize] += 1;
        }
    }
    let people = alive.len().max(1) as f64;
    let kinds: Vec<(String, f64)> = per_kind
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n > 0)
        .map(|(label, &n)| (plan.mapping.vertices[label].name.clone(), n as f64 / people))
        .collect();

    // The largest people.
    let mut largest: Vec<u32> = alive.clone();
    let order = |p: &u32| {
        (
            std::cmp::Reverse(persons.members[*p as usize]),
            persons.ids[*p as usize],
        )
    };
    if largest.len() > 20 {
        largest.select_nth_unstable_by_key(19, order);
        largest.truncate(20);
    }
    largest.sort_by_key(order);
    let top: Vec<(String, f64)> = largest
        .iter()
        .map(|&p| {
            (
                uuid_text(persons.ids[p as usize])[..8].to_owned(),
                f64::from(persons.members[p as usize]),
            )
        })
        .collect();

    let charts = [
        (
            "people-by-size.svg",
            bar_chart(
                "People by number of identifiers",
                "identifiers",
                "people",
                &sizes,
            )?,
        ),
        (
            "identifiers-by-kind.svg",
            bar_chart(
                "Identifiers per person, by kind",
                "kind",
                "per person (mean)",
                &kinds,
            )?,
        ),
        (
            "largest-people.svg",
            bar_chart(
                "The 20 largest people (where over-merging shows)",
                "person (id prefix)",
                "identifiers",
                &top,
            )?,
        ),
    ];
    let report_dir = dir.join("report");
    let mut html = String::new();
    let batches: Vec<&str> = index.segments.iter().map(|s| s.batch.as_str()).collect();
    let merges: usize = index.segments.iter().map(|s| s.merges.len()).sum();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Identity resolution</title>\n\
         <style>body{{font-family:sans-serif;margin:2em;max-width:960px}}td,th{{padding:2px 10px;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}</style></head><body>\n\
         <h1>Identity resolution</h1>\n<p>{} people, {} identifiers, {} merges, after batches {}.</p>\n",
        index.people,
        index.identifiers,
        merges,
        escape(&batches.join(", "))
    );
    html.push_str("<table><tr><th>batch</th><th>new identifiers</th><th>new people</th><th>personId set</th><th>merges</th></tr>\n");
    for s in &index.segments {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.batch),
            s.new_identifiers,
            s.new_people,
            s.changed_identifiers,
            s.merges.len()
        );
    }
    html.push_str("</table>\n");
    for (name, svg) in charts {
        store
            .write(&report_dir.join(name), svg.into_bytes())
            .map_err(|e| Error::Storage(e.to_string()))?;
        let _ = writeln!(html, "<p><img src=\"{name}\" alt=\"{name}\"></p>");
    }
    html.push_str(
        "<h2>The largest people</h2>\n<table><tr><th>person</th><th>identifiers</th></tr>\n",
    );
    for &p in &largest {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td></tr>",
            uuid_text(persons.ids[p as usize]),
            persons.members[p as usize]
        );
    }
    html.push_str(
        "</table>\n<p>Look one up with <code>resolve who PERSON_ID</code>.</p></body></html>\n",
    );
    let page = report_dir.join("index.html");
    store
        .write(&page, html.into_bytes())
        .map_err(|e| Error::Storage(e.to_string()))?;
    Ok(page)
}
