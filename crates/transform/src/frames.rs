//! Merging and sorting element rows with polars: one frame per label, grouped by id, every
//! property taking the latest non-empty value in source order, rows sorted by id.

use polars::prelude::*;

use crate::Error;
use crate::elements::{EdgeRows, VertexRows};

/// Merged vertices of one label, sorted by id.
#[derive(Debug, Default)]
pub struct MergedVertices {
    pub ids: Vec<u128>,
    pub keys: Vec<String>,
    pub props: Vec<Vec<Option<String>>>,
}

/// Merged edges of one label, sorted by id.
#[derive(Debug, Default)]
pub struct MergedEdges {
    pub ids: Vec<u128>,
    pub from: Vec<u128>,
    pub to: Vec<u128>,
    pub props: Vec<Vec<Option<String>>>,
}

fn polars_error(label: &str, e: PolarsError) -> Error {
    Error::Internal(format!("merging {label}: {e}"))
}

fn split(name: &str, values: &[u128]) -> [Column; 2] {
    [
        Column::new(
            format!("{name}_hi").into(),
            values
                .iter()
                .map(|v| (v >> 64) as u64)
                .collect::<Vec<u64>>(),
        ),
        Column::new(
            format!("{name}_lo").into(),
            values.iter().map(|&v| v as u64).collect::<Vec<u64>>(),
        ),
    ]
}

fn joined(df: &DataFrame, name: &str) -> PolarsResult<Vec<u128>> {
    let hi = df.column(&format!("{name}_hi"))?.u64()?;
    let lo = df.column(&format!("{name}_lo"))?.u64()?;
    Ok(hi
        .iter()
        .zip(lo.iter())
        .map(|(h, l)| (u128::from(h.unwrap_or(0)) << 64) | u128::from(l.unwrap_or(0)))
        .collect())
}

fn strings(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    Ok(df
        .column(name)?
        .str()?
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect())
}

fn property_name(p: usize) -> String {
    format!("p{p}")
}

/// The latest non-empty value of a property, by source sequence.
fn latest(p: usize) -> Expr {
    col(property_name(p))
        .sort_by([col("seq")], SortMultipleOptions::default())
        .drop_nulls()
        .last()
}

fn id_order() -> SortMultipleOptions {
    SortMultipleOptions::default().with_maintain_order(true)
}

pub fn merge_vertices(label: &str, rows: VertexRows) -> Result<MergedVertices, Error> {
    if rows.len() == 0 {
        return Ok(MergedVertices {
            props: vec![Vec::new(); rows.props.len()],
            ..MergedVertices::default()
        });
    }
    let fail = |e| polars_error(label, e);
    let height = rows.len();
    let n_props = rows.props.len();
    let mut columns = Vec::with_capacity(4 + n_props);
    columns.extend(split("id", &rows.ids));
    columns.push(Column::new("seq".into(), rows.seqs));
    columns.push(Column::new("key".into(), rows.keys));
    for (p, values) in rows.props.into_iter().enumerate() {
        columns.push(Column::new(property_name(p).into(), values));
    }
    let mut aggregates = vec![col("key").first()];
    aggregates.extend((0..n_props).map(latest));
    let merged = DataFrame::new(height, columns)
        .map_err(fail)?
        .lazy()
        .group_by([col("id_hi"), col("id_lo")])
        .agg(aggregates)
        .sort(["id_hi", "id_lo"], id_order())
        .collect()
        .map_err(fail)?;
    Ok(MergedVertices {
        ids: joined(&merged, "id").map_err(fail)?,
        keys: strings(&merged, "key")
            .map_err(fail)?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect(),
        props: (0..n_props)
            .map(|p| strings(&merged, &property_name(p)))
            .collect::<PolarsResult<_>>()
            .map_err(fail)?,
    })
}

pub fn merge_edges(label: &str, rows: EdgeRows) -> Result<MergedEdges, Error> {
    if rows.len() == 0 {
        return Ok(MergedEdges {
            props: vec![Vec::new(); rows.props.len()],
            ..MergedEdges::default()
        });
    }
    let fail = |e| polars_error(label, e);
    let height = rows.len();
    let n_props = rows.props.len();
    let mut columns = Vec::with_capacity(7 + n_props);
    columns.extend(split("id", &rows.ids));
    columns.extend(split("from", &rows.from));
    columns.extend(split("to", &rows.to));
    columns.push(Column::new("seq".into(), rows.seqs));
    for (p, values) in rows.props.into_iter().enumerate() {
        columns.push(Column::new(property_name(p).into(), values));
    }
    let mut aggregates = ["from_hi", "from_lo", "to_hi", "to_lo"]
        .iter()
        .map(|c| col(*c).first())
        .collect::<Vec<_>>();
    aggregates.extend((0..n_props).map(latest));
    let merged = DataFrame::new(height, columns)
        .map_err(fail)?
        .lazy()
        .group_by([col("id_hi"), col("id_lo")])
        .agg(aggregates)
        .sort(["id_hi", "id_lo"], id_order())
        .collect()
        .map_err(fail)?;
    Ok(MergedEdges {
        ids: joined(&merged, "id").map_err(fail)?,
        from: joined(&merged, "from").map_err(fail)?,
        to: joined(&merged, "to").map_err(fail)?,
        props: (0..n_props)
            .map(|p| strings(&merged, &property_name(p)))
            .collect::<PolarsResult<_>>()
            .map_err(fail)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vertices_merge_to_the_latest_non_empty_value_sorted_by_id() {
        let rows = VertexRows {
            ids: vec![u128::MAX, 5, u128::MAX, 5, 7],
            seqs: vec![1, 2, 3, 4, 5],
            keys: vec!["z".into(), "a".into(), "z".into(), "a".into(), "b".into()],
            props: vec![vec![
                Some("old".into()),
                None,
                Some("new".into()),
                Some("kept".into()),
                None,
            ]],
        };
        let merged = merge_vertices("T", rows).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(merged.ids, vec![5, 7, u128::MAX]);
        assert_eq!(merged.keys, vec!["a", "b", "z"]);
        assert_eq!(
            merged.props[0],
            vec![Some("kept".into()), None, Some("new".into())]
        );
    }

    #[test]
    fn a_later_empty_value_does_not_erase_an_earlier_one() {
        let rows = VertexRows {
            ids: vec![1, 1],
            seqs: vec![2, 1],
            keys: vec!["k".into(), "k".into()],
            props: vec![vec![None, Some("v".into())]],
        };
        let merged = merge_vertices("T", rows).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(merged.props[0], vec![Some("v".into())]);
    }

    #[test]
    fn edges_merge_by_id() {
        let rows = EdgeRows {
            ids: vec![9, 3, 9],
            seqs: vec![1, 2, 3],
            from: vec![1, 2, 1],
            to: vec![4, 5, 4],
            props: vec![vec![Some("1".into()), None, Some("2".into())]],
        };
        let merged = merge_edges("E", rows).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(merged.ids, vec![3, 9]);
        assert_eq!((merged.from, merged.to), (vec![2, 1], vec![5, 4]));
        assert_eq!(merged.props[0], vec![None, Some("2".into())]);
    }
}
