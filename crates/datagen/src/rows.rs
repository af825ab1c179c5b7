//! Rows of the four datasets, as in the reference generator:
//!
//! - `first_party`: one profile per person; in a batch, `--update-share` of the rows update an
//!   existing person's address and/or loyalty standing, the rest are new people.
//! - `transactional`: one purchase per record, by a person named by external id or by email,
//!   about half each.
//! - visits: of N visits about half are mobile sessions (with a device from the pool) and half
//!   web visits, of which about half accept the cookie and yield a cookie row and a web
//!   clickstream row sharing the session id (the others leave no trace). About half of the
//!   sessions are logged in as a known person.
//!
//! Each row has its own random stream (see `rng`), so chunks can be made in any order.

use std::ops::Range;

use idgraph_core::{Dataset, SourceSchemas};
use rand::RngExt;

use crate::Error;
use crate::catalog::{APPS, Catalog, EVENTS, Pool, pick, push_product, push_url_path, user_agent};
use crate::config::{Plan, Pools};
use crate::dirt::{DirtTargets, decide};
use crate::output::{FileChunk, RowBuf, RowPerson, SealedChunk};
use crate::people::{People, address, loyalty};
use crate::rng::{Permutation, RowRng, Stream, item_rng, salt};
use crate::timefmt::{SECONDS_PER_DAY, push_date, push_timestamp};

/// Rows per chunk: the unit of parallel work. Fixed, so output never depends on threads.
pub(crate) const CHUNK_ITEMS: u64 = 4_096;

/// Purchase ids look like `ABCD-01234567`: four letters, eight digits.
const PURCHASE_ID_SPACE: u64 = 26 * 26 * 26 * 26 * 100_000_000;

/// One pass over `records` items that writes one or two datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    FirstParty,
    Transactional,
    /// Web and mobile visits: clickstream rows, and cookie rows for web visits.
    Visits,
}

impl Job {
    pub(crate) const ALL: [Job; 3] = [Job::FirstParty, Job::Transactional, Job::Visits];

    pub(crate) fn outputs(self) -> &'static [Dataset] {
        match self {
            Job::FirstParty => &[Dataset::FirstParty],
            Job::Transactional => &[Dataset::Transactional],
            Job::Visits => &[Dataset::Clickstream, Dataset::Cookie],
        }
    }
}

#[derive(Debug)]
pub(crate) struct Generator<'p> {
    plan: &'p Plan,
    people: People,
    catalog: Catalog,
    /// The order in which the initial people get profile updates across batches.
    update_order: Permutation,
    purchase_ids: Permutation,
    targets: Vec<DirtTargets>,
}

/// Column positions that dirt variants aim at (checked against the schema in `new`).
const FIRST_PARTY_WIDTH: usize = 11;
const COOKIE_USER_NAME: usize = 3;
const CLICKSTREAM_USER_NAME: usize = 7;
const TRANSACTIONAL_CUSTOMER_ID: usize = 4;

impl<'p> Generator<'p> {
    pub(crate) fn new(plan: &'p Plan, schemas: &SourceSchemas) -> Result<Generator<'p>, Error> {
        let expect = |dataset, column: &str, at: usize| -> Result<(), Error> {
            match schemas.get(dataset).position(column) {
                Some(i) if i == at => Ok(()),
                _ => Err(Error::Internal(format!(
                    "schemas/sources.toml: datagen writes {dataset}.{column} as column {}",
                    at + 1
                ))),
            }
        };
        expect(Dataset::Cookie, "user_name", COOKIE_USER_NAME)?;
        expect(Dataset::Clickstream, "user_name", CLICKSTREAM_USER_NAME)?;
        expect(
            Dataset::Transactional,
            "customer_id",
            TRANSACTIONAL_CUSTOMER_ID,
        )?;
        expect(Dataset::FirstParty, "loyalty_level", FIRST_PARTY_WIDTH - 1)?;
        let targets = Dataset::ALL
            .iter()
            .map(|d| DirtTargets::new(schemas.get(*d)).map_err(Error::Internal))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Generator {
            plan,
            people: People::new(plan.seed, plan.as_of_days),
            catalog: Catalog::new(plan.seed),
            update_order: Permutation::new(
                plan.initial_records.max(1),
                salt(plan.seed, Stream::Permutation, 1),
            ),
            purchase_ids: Permutation::new(
                PURCHASE_ID_SPACE,
                salt(plan.seed, Stream::Permutation, 2),
            ),
            targets,
        })
    }

    /// Generates the rows of items `range` of `job`: one sealed chunk per output of the job.
    pub(crate) fn chunk(&self, job: Job, range: Range<u64>) -> Result<Vec<SealedChunk>, Error> {
        let keep_truth = self.plan.truth;
        let rate = self.plan.dirty_rate;
        let mut files: Vec<FileChunk> = job
            .outputs()
            .iter()
            .map(|_| FileChunk::new(keep_truth))
            .collect();
        let mut row = RowBuf::default();
        let mut cookie = RowBuf::default();
        for i in range {
            match job {
                Job::FirstParty => {
                    let (mut rng, who) = self.first_party(i, &mut row);
                    let damage = decide(&mut rng, rate, self.targets(Dataset::FirstParty), None);
                    files[0].write(&row, who, damage)?;
                }
                Job::Transactional => {
                    let (mut rng, who, by_email) = self.transaction(i, &mut row);
                    let variant_of = by_email.then(|| {
                        (
                            TRANSACTIONAL_CUSTOMER_ID,
                            row.get(TRANSACTIONAL_CUSTOMER_ID),
                        )
                    });
                    let damage = decide(
                        &mut rng,
                        rate,
                        self.targets(Dataset::Transactional),
                        variant_of,
                    );
                    files[0].write(&row, who, damage)?;
                }
                Job::Visits => {
                    let Some((mut rng, who, web)) = self.visit(i, &mut row, &mut cookie) else {
                        continue;
                    };
                    let logged_in = who.person.is_some();
                    let variant_of =
                        logged_in.then(|| (CLICKSTREAM_USER_NAME, row.get(CLICKSTREAM_USER_NAME)));
                    let damage = decide(
                        &mut rng,
                        rate,
                        self.targets(Dataset::Clickstream),
                        variant_of,
                    );
                    files[0].write(&row, who, damage)?;
                    if web {
                        let variant_of =
                            logged_in.then(|| (COOKIE_USER_NAME, cookie.get(COOKIE_USER_NAME)));
                        let damage =
                            decide(&mut rng, rate, self.targets(Dataset::Cookie), variant_of);
                        files[1].write(&cookie, who, damage)?;
                    }
                }
            }
        }
        files.into_iter().map(|f| f.seal(self.plan.gzip)).collect()
    }

    fn targets(&self, dataset: Dataset) -> &DirtTargets {
        &self.targets[dataset as usize]
    }

    /// A person some row refers to: an existing one with probability `update_share` (in a
    /// batch), otherwise one of this run's new people.
    fn pick_person(&self, rng: &mut RowRng) -> RowPerson {
        let plan = self.plan;
        if plan.existing_people > 0 && (plan.new_people == 0 || rng.random_bool(plan.update_share))
        {
            RowPerson {
                person: Some(rng.random_range(0..plan.existing_people)),
                existing: true,
            }
        } else {
            RowPerson {
                person: Some(plan.existing_people + rng.random_range(0..plan.new_people)),
                existing: false,
            }
        }
    }

    fn pool<'a>(pools: &'a Pools, rng: &mut RowRng) -> &'a Pool {
        match &pools.batch {
            Some(own) if !rng.random_bool(pools.base_share) => own,
            _ => &pools.base,
        }
    }

    fn first_party(&self, i: u64, row: &mut RowBuf) -> (RowRng, RowPerson) {
        let plan = self.plan;
        let mut rng = item_rng(plan.seed, Stream::ProfileUpdate, plan.scope, i);
        // In a batch, rows whose share of updates crosses a whole number are updates: exactly
        // floor(records * update_share) of them, spread evenly.
        let updates_before = (i as f64 * plan.update_share).floor() as u64;
        let updates_through = ((i + 1) as f64 * plan.update_share).floor() as u64;
        let (who, (addr, loyal)) = if plan.existing_people > 0 && updates_through > updates_before {
            let position = (plan.first_profile_update + updates_before) % plan.initial_records;
            let person = self.update_order.apply(position);
            let (mut addr, mut loyal) = self.people.first_profile(&self.catalog, person);
            match rng.random_range(0..3) {
                0 => addr = address(&mut rng, &self.catalog),
                1 => loyal = loyalty(&mut rng),
                _ => {
                    addr = address(&mut rng, &self.catalog);
                    loyal = loyalty(&mut rng);
                }
            }
            let who = RowPerson {
                person: Some(person),
                existing: true,
            };
            (who, (addr, loyal))
        } else {
            let person = plan.existing_people + (i - updates_before);
            let who = RowPerson {
                person: Some(person),
                existing: false,
            };
            (who, self.people.first_profile(&self.catalog, person))
        };
        let id = self.people.identity(who.person.unwrap_or_default());
        row.clear();
        row.field(&id.user_name);
        row.field(&id.email);
        row.field(&id.phone);
        row.field(&id.external_id);
        row.field(&addr.street);
        row.field_u64(u64::from(addr.postcode));
        row.field(&addr.city.name);
        row.field(addr.city.country);
        row.field_with(|b| push_date(b, id.birthday));
        row.field_u64(u64::from(loyal.points));
        row.field(loyal.level);
        (rng, who)
    }

    fn push_purchase_id(&self, serial: u64, buf: &mut String) {
        let value = self.purchase_ids.apply(serial % PURCHASE_ID_SPACE);
        let mut letters = value / 100_000_000;
        let mut code = [b'A'; 4];
        for slot in code.iter_mut().rev() {
            *slot = b'A' + (letters % 26) as u8;
            letters /= 26;
        }
        buf.extend(code.iter().map(|&b| char::from(b)));
        buf.push('-');
        let digits = value % 100_000_000;
        let formatted = itoa::Buffer::new().format(digits).to_owned();
        buf.extend(std::iter::repeat_n('0', 8 - formatted.len()));
        buf.push_str(&formatted);
    }

    /// Returns the row's stream, who bought, and whether they are named by email.
    fn transaction(&self, t: u64, row: &mut RowBuf) -> (RowRng, RowPerson, bool) {
        let plan = self.plan;
        let mut rng = item_rng(plan.seed, Stream::Transaction, plan.scope, t);
        row.clear();
        row.field_with(|b| self.push_purchase_id(plan.first_purchase + t, b));
        let mut category = "";
        row.field_with(|b| category = push_product(&mut rng, b));
        let day = rng
            .random_range(plan.window.clone())
            .div_euclid(SECONDS_PER_DAY);
        row.field_with(|b| push_date(b, day));
        row.field(category);
        let who = self.pick_person(&mut rng);
        let id = self.people.identity(who.person.unwrap_or_default());
        let by_email = rng.random_bool(0.5);
        row.field(if by_email { &id.email } else { &id.external_id });
        row.field_u64(rng.random_range(10..=100));
        (rng, who, by_email)
    }

    /// One visit: `None` when it leaves no row (a web visitor who declined the cookie);
    /// otherwise the clickstream row in `click`, and for web visits the cookie row in `cookie`.
    fn visit(
        &self,
        v: u64,
        click: &mut RowBuf,
        cookie: &mut RowBuf,
    ) -> Option<(RowRng, RowPerson, bool)> {
        let plan = self.plan;
        let mut rng = item_rng(plan.seed, Stream::Visit, plan.scope, v);
        let mobile = rng.random_bool(0.5);
        if !mobile && !rng.random_bool(0.5) {
            return None;
        }
        let session_id = uuid_v4(&mut rng);
        let who = if rng.random_bool(0.5) {
            self.pick_person(&mut rng)
        } else {
            RowPerson::default()
        };
        let user_name = who.person.map(|p| self.people.identity(p).user_name);
        let user_name = user_name.as_deref().unwrap_or("");
        let duration = rng.random_range(30..=1_800i64);
        let end = rng.random_range(plan.window.clone());

        click.clear();
        click.field(&session_id);
        let ip_pool = Self::pool(&plan.ips, &mut rng);
        let ip = ip_pool.pick_index(&mut rng);
        click.field_with(|b| ip_pool.push_ip(ip, b));
        click.field(if mobile { "mobile" } else { "web" });
        let domain = self.catalog.domain(&mut rng);
        click.field_with(|b| {
            b.push_str("https://www.");
            b.push_str(domain);
            b.push('/');
            push_url_path(&mut rng, b);
        });
        click.field(domain);
        click.field(pick(&mut rng, &APPS));
        if mobile {
            let device_pool = Self::pool(&plan.devices, &mut rng);
            let device = device_pool.pick_index(&mut rng);
            click.field_with(|b| device_pool.push_device(device, b));
        } else {
            click.field("");
        }
        click.field(user_name);
        click.field_u64(rng.random_range(2..=30));
        click.field_with(|b| push_timestamp(b, end - duration));
        click.field(pick(&mut rng, &EVENTS));
        click.field_with(|b| push_timestamp(b, end));
        click.field(pick(&mut rng, &EVENTS));
        click.field_u64(duration as u64);
        click.field(user_agent(&mut rng));

        if !mobile {
            cookie.clear();
            cookie.field(&uuid_v4(&mut rng));
            cookie.field(&session_id);
            cookie.field_with(|b| push_timestamp(b, end));
            cookie.field(user_name);
            if rng.random_bool(0.5) {
                let (a, b) = (
                    rng.random_range(0..10_000u32),
                    rng.random_range(0..10_000u32),
                );
                cookie.field(&format!("x{a},x{b}"));
            } else {
                cookie.field("");
            }
            cookie.field_u64(duration as u64);
        }
        Some((rng, who, !mobile))
    }
}

fn uuid_v4(rng: &mut RowRng) -> String {
    let id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buf).to_owned()
}
