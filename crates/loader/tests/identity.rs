//! Identity resolution as the loader runs it: after every batch's load, the `personId` batch is
//! loaded too. Person ids stay put across a full run and incremental batches; a batch that links
//! two people merges them under the older id; and the loaded graph (neptune-local) gives every
//! identifier of a person the same `personId`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use idgraph_core::{Dataset, Layout, SourceKind, SourceSchemas};
use idgraph_storage::{Location, Store};
use resolve::{Answer, ResolvePlan};

const FIRST: &str = "20260110_000000";
const SECOND: &str = "20260111_000000";

fn generate(root: &Path, records: u64, batch: Option<&str>) {
    datagen::generate(&datagen::Config {
        root: root.to_path_buf(),
        records,
        fragmentation: 0.2,
        incremental: batch.is_some(),
        batch: batch.map(|b| b.parse().unwrap_or_else(|e| panic!("{e}"))),
        ..datagen::Config::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

fn loader(root: &Path, command: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_loader"))
        .arg("--root")
        .arg(root)
        .arg("--quiet")
        .arg(command)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn rows(root: &Path, kind: &SourceKind, dataset: Dataset) -> Vec<Vec<String>> {
    let path = root
        .join(Layout::source_dir(kind, dataset))
        .join(Layout::source_file_name(kind, dataset, false));
    testkit::csv_records(&path)
}

fn person(plan: &ResolvePlan, key: &str) -> resolve::Person {
    match resolve::who(plan, &Store::default(), key) {
        Ok(Answer::Person(p)) => p,
        other => panic!("{key}: {other:?}"),
    }
}

/// The `personId` rows of one identity batch: vertex id -> person id.
fn person_ids(root: &Path, batch: &SourceKind) -> HashMap<String, String> {
    let dir = root
        .join(Layout::identity_graph_dir(batch))
        .join("vertices");
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if !path.to_string_lossy().contains("personId-") {
            continue;
        }
        for r in testkit::csv_records(&path) {
            out.insert(r[0].clone(), r[2].clone());
        }
    }
    out
}

fn property(graph: &neptune_local::GraphStore, id: &str, name: &str) -> Option<String> {
    let views = graph.show(id, 0).unwrap_or_else(|e| panic!("{e}"));
    let view = views.into_iter().find(|v| v.id == id)?;
    view.properties
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.value)
}

#[test]
fn person_ids_stay_put_and_a_link_between_two_people_keeps_the_older_id() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = dir.path();
    let plan = ResolvePlan::new(
        Location::Local(root.to_path_buf()),
        transform::Mapping::default_mapping().unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let initial = SourceKind::Initial;
    let first = SourceKind::Incremental(FIRST.parse().unwrap_or_else(|e| panic!("{e}")));
    let second = SourceKind::Incremental(SECOND.parse().unwrap_or_else(|e| panic!("{e}")));

    generate(root, 1_500, None);
    let out = loader(root, "full");
    assert!(out.contains("people resolved"), "{out}");
    // Person A: a known user with a cookie.
    let cookies = rows(root, &initial, Dataset::Cookie);
    let a_cookie = cookies
        .iter()
        .find(|c| !c[3].is_empty())
        .unwrap_or_else(|| panic!("no logged-in cookie"));
    let a = person(&plan, &a_cookie[3]);

    generate(root, 300, Some(FIRST));
    loader(root, "incremental");
    let initial_ids = person_ids(root, &initial);
    let first_ids = person_ids(root, &first);
    // Nothing links two people in the first batch: no earlier identifier changes person.
    assert!(
        first_ids.keys().all(|id| !initial_ids.contains_key(id)),
        "the first batch re-assigned an earlier identifier"
    );
    assert_eq!(person(&plan, &a_cookie[3]).person_id, a.person_id);
    // Person B: a user first seen in the first batch.
    let known: std::collections::HashSet<String> = rows(root, &initial, Dataset::FirstParty)
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let b_user = rows(root, &first, Dataset::FirstParty)
        .into_iter()
        .map(|r| r[0].clone())
        .find(|u| !known.contains(u))
        .unwrap_or_else(|| panic!("no new user in the first batch"));
    let b = person(&plan, &b_user);
    assert_ne!(a.person_id, b.person_id);

    // The second batch: B logs in on A's cookie. One person now, with A's (older) id.
    for dataset in Dataset::ALL {
        let dir = root.join(Layout::source_dir(&second, dataset));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mut text = SourceSchemas::embedded().get(dataset).header_line() + "\n";
        if dataset == Dataset::Cookie {
            text.push_str(&format!(
                "{},00000000-0000-4000-8000-000000000001,2026-01-10 12:00:00,{b_user},,60\n",
                a_cookie[0]
            ));
        }
        std::fs::write(
            dir.join(Layout::source_file_name(&second, dataset, false)),
            text,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let out = loader(root, "incremental");
    assert!(out.contains("1 merges"), "{out}");
    let merged = person(&plan, &b_user);
    assert_eq!(merged.person_id, a.person_id);
    assert_eq!(merged.merged, vec![b.person_id.clone()]);
    assert_eq!(person(&plan, &a_cookie[0]).person_id, a.person_id);
    let summary = resolve::summary(&Store::default(), &plan.root)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no state"));
    assert_eq!(summary.batches, ["initial", FIRST, SECOND]);
    assert_eq!(summary.merges, 1);

    // The loaded graph: every identifier of the merged person carries A's id; B's person
    // vertex says where it went.
    let graph = neptune_local::GraphStore::open(
        &root.join("neptune-local").join(neptune_local::GRAPH_FILE),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(merged.identifiers.len() > a.identifiers.len());
    for identifier in &merged.identifiers {
        let mut id = String::new();
        transform::push_id(
            &mut id,
            transform::vertex_id(&identifier.kind, &identifier.key),
        );
        assert_eq!(
            property(&graph, &id, "personId").as_deref(),
            Some(a.person_id.as_str()),
            "{} {}",
            identifier.kind,
            identifier.key
        );
    }
    assert_eq!(
        property(&graph, &b.person_id, "mergedInto").as_deref(),
        Some(a.person_id.as_str())
    );
    assert_eq!(
        property(&graph, &b.person_id, "members").as_deref(),
        Some("0")
    );
    // And every other identifier: the person id its batches gave it, the latest winning.
    let mut expected = initial_ids;
    expected.extend(first_ids);
    expected.extend(person_ids(root, &second));
    for (id, person_id) in expected.iter().step_by(7) {
        assert_eq!(
            property(&graph, id, "personId").as_deref(),
            Some(person_id.as_str()),
            "{id}"
        );
    }
}
