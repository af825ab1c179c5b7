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
use crate::people::{
    Address, Fragment, HOUSEHOLD_SIZE, Loyalty, People, SharedId, address, loyalty,
};
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
                    // A new person's second profile follows their first.
                    if let (false, Some(person)) = (who.existing, who.person)
                        && let Some(shared) = self
                            .people
                            .fragment(person, self.plan.fragmentation)
                            .second_profile
                    {
                        self.second_profile(person, shared, &mut rng, &mut row);
                        let damage =
                            decide(&mut rng, rate, self.targets(Dataset::FirstParty), None);
                        files[0].write(&row, who, damage)?;
                        files[0].fragments().second_profiles += 1;
                    }
                }
                Job::Transactional => {
                    let (mut rng, who, by_email, fragmented) = self.transaction(i, &mut row);
                    if fragmented {
                        files[0].fragments().email_purchases += 1;
                    }
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
                    let Some((mut rng, who, web, fragment, end)) =
                        self.visit(i, &mut row, &mut cookie)
                    else {
                        continue;
                    };
                    if fragment.household {
                        files[0].fragments().household_sessions += 1;
                    }
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
                    // The same cookie, earlier, in a session nobody logged into.
                    if let (true, true, Some(person)) = (web, fragment.anonymous, who.person) {
                        self.anonymous_visit(person, end, &mut rng, &mut row, &mut cookie);
                        let damage =
                            decide(&mut rng, rate, self.targets(Dataset::Clickstream), None);
                        files[0].write(&row, who, damage)?;
                        let damage = decide(&mut rng, rate, self.targets(Dataset::Cookie), None);
                        files[1].write(&cookie, who, damage)?;
                        files[0].fragments().anonymous_sessions += 1;
                        files[1].fragments().anonymous_sessions += 1;
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
                visitor: None,
            }
        } else {
            RowPerson {
                person: Some(plan.existing_people + rng.random_range(0..plan.new_people)),
                existing: false,
                visitor: None,
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
                visitor: None,
            };
            (who, (addr, loyal))
        } else {
            let person = plan.existing_people + (i - updates_before);
            let who = RowPerson {
                person: Some(person),
                existing: false,
                visitor: None,
            };
            (who, self.people.first_profile(&self.catalog, person))
        };
        let id = self.people.identity(who.person.unwrap_or_default());
        let names = (id.user_name.as_str(), id.email.as_str());
        push_profile(
            row,
            names,
            &id.phone,
            &id.external_id,
            &addr,
            id.birthday,
            loyal,
        );
        (rng, who)
    }

    /// A fragmented person's second profile: another user name and email, the phone or the
    /// external id of the first, and half the time a newer address.
    fn second_profile(&self, person: u64, shared: SharedId, rng: &mut RowRng, row: &mut RowBuf) {
        let id = self.people.identity(person);
        let alias = self.people.alias(person);
        let (mut addr, _) = self.people.first_profile(&self.catalog, person);
        if rng.random_bool(0.5) {
            addr = address(rng, &self.catalog);
        }
        let loyal = loyalty(rng);
        let (phone, external_id) = match shared {
            SharedId::Phone => (&id.phone, &alias.external_id),
            SharedId::ExternalId => (&alias.phone, &id.external_id),
        };
        let names = (alias.user_name.as_str(), alias.email.as_str());
        push_profile(row, names, phone, external_id, &addr, id.birthday, loyal);
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

    /// Returns the row's stream, who bought, whether they are named by email, and whether that
    /// email is written otherwise than in their profile (`Fragment::email_purchases`).
    fn transaction(&self, t: u64, row: &mut RowBuf) -> (RowRng, RowPerson, bool, bool) {
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
        let person = who.person.unwrap_or_default();
        let id = self.people.identity(person);
        let by_email = rng.random_bool(0.5);
        let fragmented = self
            .people
            .fragment(person, plan.fragmentation)
            .email_purchases;
        if fragmented {
            row.field_with(|b| push_email_variant(&mut rng, &id.email, b));
        } else {
            row.field(if by_email { &id.email } else { &id.external_id });
        }
        row.field_u64(rng.random_range(10..=100));
        (rng, who, by_email || fragmented, fragmented)
    }

    /// One visit: `None` when it leaves no row (a web visitor who declined the cookie);
    /// otherwise the clickstream row in `click`, and for web visits the cookie row in `cookie`.
    fn visit(
        &self,
        v: u64,
        click: &mut RowBuf,
        cookie: &mut RowBuf,
    ) -> Option<(RowRng, RowPerson, bool, Fragment, i64)> {
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
            RowPerson {
                visitor: Some((plan.scope, v)),
                ..RowPerson::default()
            }
        };
        let fragment = who
            .person
            .map(|p| self.people.fragment(p, plan.fragmentation))
            .unwrap_or_default();
        let user_name = who.person.map(|p| self.people.identity(p).user_name);
        let user_name = user_name.as_deref().unwrap_or("");
        let duration = rng.random_range(30..=1_800i64);
        let end = rng.random_range(plan.window.clone());
        let household = match who.person {
            Some(p) if fragment.household => Some(p / HOUSEHOLD_SIZE),
            _ => None,
        };
        let persistent_cookie = match who.person {
            Some(p) if fragment.anonymous => Some(self.persistent_cookie(p)),
            _ => None,
        };
        let session = Session {
            mobile,
            id: &session_id,
            user_name,
            duration,
            end,
            household,
            cookie: persistent_cookie.as_deref(),
        };
        self.session(&mut rng, &session, click, cookie);
        Some((rng, who, !mobile, fragment, end))
    }

    /// The anonymous web session a fragmented person had before a logged-in one: the same
    /// persistent cookie, a new session id, no user name, an hour to a week earlier.
    fn anonymous_visit(
        &self,
        person: u64,
        logged_in_end: i64,
        rng: &mut RowRng,
        click: &mut RowBuf,
        cookie: &mut RowBuf,
    ) {
        let session_id = uuid_v4(rng);
        let duration = rng.random_range(30..=1_800i64);
        let end = logged_in_end - rng.random_range(3_600..=7 * SECONDS_PER_DAY);
        let cookie_id = self.persistent_cookie(person);
        let session = Session {
            mobile: false,
            id: &session_id,
            user_name: "",
            duration,
            end,
            household: None,
            cookie: Some(&cookie_id),
        };
        self.session(rng, &session, click, cookie);
    }

    /// An IP or device for a session: drawn from the pools, or the household's own.
    fn pick_or_household<'a>(
        pools: &'a Pools,
        household: Option<u64>,
        seed: u64,
        rng: &mut RowRng,
    ) -> (&'a Pool, u64) {
        match household {
            Some(h) => (
                &pools.base,
                salt(seed, Stream::Fragment, h) % pools.base.size,
            ),
            None => {
                let pool = Self::pool(pools, rng);
                (pool, pool.pick_index(rng))
            }
        }
    }

    /// The cookie a fragmented person keeps across visits and batches.
    fn persistent_cookie(&self, person: u64) -> String {
        uuid_v4(&mut item_rng(self.plan.seed, Stream::Fragment, 1, person))
    }

    /// Writes one session's clickstream row, and for a web session its cookie row.
    fn session(&self, rng: &mut RowRng, s: &Session<'_>, click: &mut RowBuf, cookie: &mut RowBuf) {
        let plan = self.plan;
        click.clear();
        click.field(s.id);
        // A household's sessions come from its one home IP (and device, below).
        let (ip_pool, ip) = Self::pick_or_household(&plan.ips, s.household, plan.seed, rng);
        click.field_with(|b| ip_pool.push_ip(ip, b));
        click.field(if s.mobile { "mobile" } else { "web" });
        let domain = self.catalog.domain(rng);
        click.field_with(|b| {
            b.push_str("https://www.");
            b.push_str(domain);
            b.push('/');
            push_url_path(rng, b);
        });
        click.field(domain);
        click.field(pick(rng, &APPS));
        if s.mobile {
            let (device_pool, device) =
                Self::pick_or_household(&plan.devices, s.household, plan.seed, rng);
            click.field_with(|b| device_pool.push_device(device, b));
        } else {
            click.field("");
        }
        click.field(s.user_name);
        click.field_u64(rng.random_range(2..=30));
        click.field_with(|b| push_timestamp(b, s.end - s.duration));
        click.field(pick(rng, &EVENTS));
        click.field_with(|b| push_timestamp(b, s.end));
        click.field(pick(rng, &EVENTS));
        click.field_u64(s.duration as u64);
        click.field(user_agent(rng));

        if !s.mobile {
            cookie.clear();
            let drawn = uuid_v4(rng);
            cookie.field(s.cookie.unwrap_or(&drawn));
            cookie.field(s.id);
            cookie.field_with(|b| push_timestamp(b, s.end));
            cookie.field(s.user_name);
            if rng.random_bool(0.5) {
                let (a, b) = (
                    rng.random_range(0..10_000u32),
                    rng.random_range(0..10_000u32),
                );
                cookie.field(&format!("x{a},x{b}"));
            } else {
                cookie.field("");
            }
            cookie.field_u64(s.duration as u64);
        }
    }
}

/// A first-party row: (user name, email), phone, external id, address, birthday, loyalty.
fn push_profile(
    row: &mut RowBuf,
    (user_name, email): (&str, &str),
    phone: &str,
    external_id: &str,
    addr: &Address<'_>,
    birthday: i64,
    loyal: Loyalty,
) {
    row.clear();
    row.field(user_name);
    row.field(email);
    row.field(phone);
    row.field(external_id);
    row.field(&addr.street);
    row.field_u64(u64::from(addr.postcode));
    row.field(&addr.city.name);
    row.field(addr.city.country);
    row.field_with(|b| push_date(b, birthday));
    row.field_u64(u64::from(loyal.points));
    row.field(loyal.level);
}

/// What `Generator::session` needs to know of a session.
struct Session<'a> {
    mobile: bool,
    id: &'a str,
    user_name: &'a str,
    duration: i64,
    end: i64,
    /// A household's sessions use its IP and device.
    household: Option<u64>,
    /// A persistent cookie instead of a new one.
    cookie: Option<&'a str>,
}

/// A purchase's customer email as a fragmented person writes it: in capitals, capitalised,
/// or with spaces around it (normalisation makes each the profile's email again).
fn push_email_variant(rng: &mut RowRng, email: &str, buf: &mut String) {
    match rng.random_range(0..3) {
        0 => buf.push_str(&email.to_uppercase()),
        1 => {
            let mut chars = email.chars();
            if let Some(first) = chars.next() {
                buf.extend(first.to_uppercase());
                buf.push_str(chars.as_str());
            }
        }
        _ => {
            buf.push_str("  ");
            buf.push_str(email);
            buf.push(' ');
        }
    }
}

fn uuid_v4(rng: &mut RowRng) -> String {
    let id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buf).to_owned()
}
