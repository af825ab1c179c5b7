//! People: the identities that rows refer to.
//!
//! A person is a number. Everything that identifies them (user name, email, external id,
//! phone, birthday) is derived from that number and the seed, so any row of any batch can name
//! person 42 without looking them up, and the truth file can say "this row is person 42".
//! User names, emails and external ids are unique by construction, not by retrying.

use std::fmt::Write as _;

use fake::locales::{Data, EN};
use rand::RngExt;

use crate::catalog::{Catalog, City, LOYALTY_LEVELS, email_domain, pick, push_letters_lower};
use crate::rng::{Permutation, RowRng, Stream, item_rng, salt};

/// Valid SSN areas (001-899 without 666) x groups (01-99) x serials (0001-9999).
const SSN_SPACE: u64 = 898 * 99 * 9_999;

/// The most people a run can name: every one needs its own SSN-style external id.
pub(crate) const MAX_PEOPLE: u64 = SSN_SPACE;

/// Second CRM profiles of fragmented people take their user name and email from person number
/// `ALIAS_BASE + p`, which no real person reaches (a fragmented population stays below it).
pub(crate) const ALIAS_BASE: u64 = MAX_PEOPLE / 2;

/// Which identifier a second CRM profile shares with the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SharedId {
    Phone,
    ExternalId,
}

/// How a fragmented person's traces are scattered (`--fragmentation`): what only identity
/// resolution can join, and what it must not join (households).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fragment {
    /// A second profile (another user name and email) sharing one identifier with the first.
    pub(crate) second_profile: Option<SharedId>,
    /// Every purchase by email, written in another case or with spaces around it.
    pub(crate) email_purchases: bool,
    /// A persistent cookie, seen in an anonymous session before each logged-in web visit.
    pub(crate) anonymous: bool,
    /// Sessions from the household's IP and device, shared with the other people of it.
    pub(crate) household: bool,
}

/// People `4h..4h+4` form household `h` (those of them with `Fragment::household`).
pub(crate) const HOUSEHOLD_SIZE: u64 = 4;

/// The stable identifiers of one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) user_name: String,
    pub(crate) email: String,
    pub(crate) external_id: String,
    pub(crate) phone: String,
    /// Days since 1970-01-01.
    pub(crate) birthday: i64,
}

/// Mutable profile attributes: where a person lives and their loyalty standing.
#[derive(Debug, Clone)]
pub(crate) struct Address<'c> {
    pub(crate) street: String,
    pub(crate) postcode: u32,
    pub(crate) city: &'c City,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Loyalty {
    pub(crate) points: u32,
    pub(crate) level: &'static str,
}

/// Derives identities from person numbers for one seed.
#[derive(Debug)]
pub(crate) struct People {
    seed: u64,
    /// Birthdays fall in this range of days (ages 12 to 115 at the reference date).
    birthday_days: std::ops::RangeInclusive<i64>,
    /// One permutation per decimal width of the person number (index 0: numbers below 10^4,
    /// then one per width from 5 to 19 digits).
    code_permutations: Vec<Permutation>,
    ssn_permutation: Permutation,
}

impl People {
    /// `as_of_days`: the reference "today" of the initial population, in days since 1970.
    pub(crate) fn new(seed: u64, as_of_days: i64) -> People {
        let year = 365.2425_f64;
        let oldest = as_of_days - (116.0 * year) as i64 + 1;
        let youngest = as_of_days - (12.0 * year) as i64;
        // Person numbers stay below MAX_PEOPLE (nine digits); 19 digits is the widest class
        // whose size fits in a u64.
        let code_permutations = (4..=19u32)
            .map(|digits| {
                let n = if digits == 4 {
                    10_000
                } else {
                    9 * 10u64.pow(digits - 1)
                };
                Permutation::new(n, salt(seed, Stream::Permutation, u64::from(digits)))
            })
            .collect();
        People {
            seed,
            birthday_days: oldest..=youngest,
            code_permutations,
            ssn_permutation: Permutation::new(SSN_SPACE, salt(seed, Stream::Permutation, 0)),
        }
    }

    /// A number unique to the person, shaped like the digits people append to user names:
    /// four digits for the first 10,000 people, then as many digits as the person number has.
    fn push_code(&self, person: u64, buf: &mut String) {
        if person < 10_000 {
            let _ = write!(buf, "{:04}", self.code_permutations[0].apply(person));
        } else {
            let digits = (person.ilog10() + 1).min(19); // 5..=19 for any person below MAX_PEOPLE
            let low = 10u64.pow(digits - 1);
            let code = low + self.code_permutations[(digits - 4) as usize].apply(person - low);
            let _ = write!(buf, "{code}");
        }
    }

    fn push_external_id(&self, person: u64, buf: &mut String) {
        let mut i = self.ssn_permutation.apply(person % SSN_SPACE);
        let serial = i % 9_999 + 1;
        i /= 9_999;
        let group = i % 99 + 1;
        i /= 99;
        let area = i + 1;
        let area = if area >= 666 { area + 1 } else { area };
        let _ = write!(buf, "{area:03}-{group:02}-{serial:04}");
    }

    pub(crate) fn identity(&self, person: u64) -> Identity {
        let mut rng = item_rng(self.seed, Stream::Person, 0, person);
        let first = pick(&mut rng, EN::NAME_FIRST_NAME);
        let last = pick(&mut rng, EN::NAME_LAST_NAME);

        // The letters part never ends in a digit and the code is all digits, so the code (and
        // with it the person) can be read back from the end: names are unique.
        let mut user_name = String::with_capacity(24);
        match rng.random_range(0..5) {
            0 => {
                push_letters_lower(&mut user_name, first.get(..1).unwrap_or(""));
                push_letters_lower(&mut user_name, last);
            }
            1 => {
                push_letters_lower(&mut user_name, first);
                user_name.push('.');
                push_letters_lower(&mut user_name, last);
            }
            2 => {
                push_letters_lower(&mut user_name, first);
                user_name.push('_');
                push_letters_lower(&mut user_name, last);
            }
            3 => {
                push_letters_lower(&mut user_name, last);
                push_letters_lower(&mut user_name, first);
            }
            _ => push_letters_lower(&mut user_name, first),
        }
        self.push_code(person, &mut user_name);

        let mut email = String::with_capacity(32);
        match rng.random_range(0..3) {
            0 => {
                push_letters_lower(&mut email, first);
                email.push('.');
                push_letters_lower(&mut email, last);
            }
            1 => {
                push_letters_lower(&mut email, first.get(..1).unwrap_or(""));
                push_letters_lower(&mut email, last);
            }
            _ => push_letters_lower(&mut email, last),
        }
        self.push_code(person, &mut email);
        email.push('@');
        email.push_str(email_domain(&mut rng));

        let mut external_id = String::with_capacity(11);
        self.push_external_id(person, &mut external_id);

        let mut phone = String::with_capacity(24);
        push_phone(&mut rng, &mut phone);

        let birthday = rng.random_range(self.birthday_days.clone());
        Identity {
            user_name,
            email,
            external_id,
            phone,
            birthday,
        }
    }

    /// How `person` is fragmented, when a share `share` of people are: decided from the
    /// person and the seed only, so every batch agrees.
    pub(crate) fn fragment(&self, person: u64, share: f64) -> Fragment {
        if share <= 0.0 {
            return Fragment::default();
        }
        let mut rng = item_rng(self.seed, Stream::Fragment, 0, person);
        if !rng.random_bool(share) {
            return Fragment::default();
        }
        // At least one kind each; every combination as likely.
        let kinds = rng.random_range(1..16u8);
        let shared = if rng.random_bool(0.5) {
            SharedId::Phone
        } else {
            SharedId::ExternalId
        };
        Fragment {
            second_profile: (kinds & 1 != 0).then_some(shared),
            email_purchases: kinds & 2 != 0,
            anonymous: kinds & 4 != 0,
            household: kinds & 8 != 0,
        }
    }

    /// The identity a fragmented person's second profile is named after.
    pub(crate) fn alias(&self, person: u64) -> Identity {
        self.identity(ALIAS_BASE + person)
    }

    /// The address and loyalty standing a person has when they first appear.
    pub(crate) fn first_profile<'c>(
        &self,
        catalog: &'c Catalog,
        person: u64,
    ) -> (Address<'c>, Loyalty) {
        let mut rng = item_rng(self.seed, Stream::Profile, 0, person);
        (address(&mut rng, catalog), loyalty(&mut rng))
    }
}

/// A phone number in one of the shapes US CRMs hold ("(555) 123-4567 x89", "1-555-...").
fn push_phone(rng: &mut RowRng, buf: &mut String) {
    for c in pick(rng, EN::PHONE_NUMBER_FORMATS).chars() {
        match c {
            '#' => buf.push(char::from(b'0' + rng.random_range(0..10u8))),
            // North American area and exchange codes never start with 0 or 1.
            '^' => buf.push(char::from(b'0' + rng.random_range(2..10u8))),
            other => buf.push(other),
        }
    }
}

pub(crate) fn address<'c>(rng: &mut RowRng, catalog: &'c Catalog) -> Address<'c> {
    let city = catalog.city(rng);
    let mut street = String::with_capacity(32);
    let _ = write!(street, "{} ", rng.random_range(1..20_000u32));
    street.push_str(if rng.random_bool(0.5) {
        pick(rng, EN::NAME_FIRST_NAME)
    } else {
        pick(rng, EN::NAME_LAST_NAME)
    });
    street.push(' ');
    street.push_str(pick(rng, EN::ADDRESS_STREET_SUFFIX));
    Address {
        street,
        postcode: city.postcode_base + rng.random_range(0..10),
        city,
    }
}

pub(crate) fn loyalty(rng: &mut RowRng) -> Loyalty {
    Loyalty {
        points: rng.random_range(100..=10_000),
        level: pick(rng, &LOYALTY_LEVELS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn identifiers_are_unique_across_digit_widths() {
        let people = People::new(3, 20_000);
        let mut names = HashSet::new();
        let mut emails = HashSet::new();
        let mut ids = HashSet::new();
        let persons = (0..30_000u64)
            .chain(99_990..100_010)
            .chain(999_999..1_000_001);
        for p in persons {
            let id = people.identity(p);
            assert!(
                names.insert(id.user_name.clone()),
                "user name {} twice",
                id.user_name
            );
            assert!(emails.insert(id.email.clone()), "email {} twice", id.email);
            assert!(
                ids.insert(id.external_id.clone()),
                "external id {} twice",
                id.external_id
            );
            assert_eq!(id.external_id.len(), 11);
            assert!(!id.external_id.starts_with("000") && !id.external_id.starts_with("666"));
            assert!(
                id.user_name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
            );
        }
    }

    #[test]
    fn identities_depend_on_person_and_seed_only() {
        let a = People::new(9, 20_000);
        let b = People::new(9, 20_000);
        let c = People::new(10, 20_000);
        assert_eq!(a.identity(77), b.identity(77));
        assert_ne!(a.identity(77), c.identity(77));
        assert_ne!(a.identity(77), a.identity(78));
    }

    #[test]
    fn birthdays_are_for_ages_12_to_115() {
        let as_of = 20_454; // 2026-01-01
        let people = People::new(1, as_of);
        for p in 0..5_000 {
            let age_years = (as_of - people.identity(p).birthday) as f64 / 365.2425;
            assert!((12.0..116.0).contains(&age_years), "age {age_years}");
        }
    }
}
