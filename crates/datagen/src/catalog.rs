//! Shared things that many rows point at: cities (with their country and postcodes), web
//! domains, client IPs, devices and products. Sharing them is what gives the identity graph its
//! hubs: many people live in one city, many sessions come from one IP.

use std::fmt::Write as _;

use fake::locales::{Data, EN};
use rand::RngExt;

use crate::rng::{RowRng, Stream, item_rng};

/// How many distinct cities people live in.
const CITY_COUNT: u64 = 2_000;
/// How many distinct web domains sessions visit.
const DOMAIN_COUNT: u64 = 400;

pub(crate) const LOYALTY_LEVELS: [&str; 4] = ["beginner", "enthusiast", "active", "leader"];
pub(crate) const APPS: [&str; 4] = ["ecommerce", "travel", "health_providers", "health_services"];
pub(crate) const EVENTS: [&str; 9] = [
    "Purchase",
    "Search",
    "ProductView",
    "Wishlist",
    "PageView",
    "DiscardCart",
    "CompareProducts",
    "SignIn",
    "SignUp",
];
const BRANDS: [&str; 6] = ["Samsung", "LG", "Sony", "Motorola", "BenQ", "Apple"];
const MODELS: [&str; 6] = ["S10", "X10", "d95", "SmartX", "X4T", "456ty"];
/// Product types with the category each belongs to, so that a product always has one category.
const PRODUCTS: [(&str, &str); 8] = [
    ("TV", "Home Appliances"),
    ("Cell Phone", "Electronics"),
    ("Tablet", "Electronics"),
    ("Monitor", "Electronics"),
    ("Computer", "Electronics"),
    ("Headphones", "Electronics"),
    ("Smartwatch", "Health & Sports"),
    ("GPS", "Health & Sports"),
];
/// Reserved for documentation (RFC 2606): mock people never get a mailbox that exists.
const EMAIL_DOMAINS: [&str; 3] = ["example.com", "example.org", "example.net"];

pub(crate) fn pick<T: Copy>(rng: &mut RowRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// Pushes `word` lower-cased, keeping ASCII letters only (names such as "O'Keefe").
pub(crate) fn push_letters_lower(buf: &mut String, word: &str) {
    buf.extend(
        word.chars()
            .filter(char::is_ascii_alphabetic)
            .map(|c| c.to_ascii_lowercase()),
    );
}

#[derive(Debug, Clone)]
pub(crate) struct City {
    pub(crate) name: String,
    pub(crate) country: &'static str,
    /// The lowest of the city's postcodes; a city has ten consecutive ones.
    pub(crate) postcode_base: u32,
}

/// The catalog every row of a run draws from. Built once per run from the seed.
#[derive(Debug)]
pub(crate) struct Catalog {
    pub(crate) cities: Vec<City>,
    pub(crate) domains: Vec<String>,
}

impl Catalog {
    pub(crate) fn new(seed: u64) -> Catalog {
        let cities = (0..CITY_COUNT)
            .map(|i| {
                let mut rng = item_rng(seed, Stream::City, 0, i);
                let mut name = String::new();
                // The shapes fake uses for city names: "Port Anna Ville", "Smithton", ...
                match rng.random_range(0..5) {
                    0 => {
                        name.push_str(pick(&mut rng, EN::ADDRESS_CITY_PREFIX));
                        name.push(' ');
                        name.push_str(pick(&mut rng, EN::NAME_FIRST_NAME));
                    }
                    1 => name.push_str(pick(&mut rng, EN::NAME_FIRST_NAME)),
                    _ => name.push_str(pick(&mut rng, EN::NAME_LAST_NAME)),
                }
                name.push_str(pick(&mut rng, EN::ADDRESS_CITY_SUFFIX));
                City {
                    name,
                    country: pick(&mut rng, EN::ADDRESS_COUNTRY),
                    postcode_base: rng.random_range(10_000..99_990),
                }
            })
            .collect();
        let domains = (0..DOMAIN_COUNT)
            .map(|i| {
                let mut rng = item_rng(seed, Stream::Domain, 0, i);
                let mut domain = String::new();
                push_letters_lower(&mut domain, pick(&mut rng, EN::NAME_LAST_NAME));
                if rng.random_bool(0.4) {
                    domain.push('-');
                    push_letters_lower(&mut domain, pick(&mut rng, EN::NAME_LAST_NAME));
                }
                domain.push('.');
                domain.push_str(pick(&mut rng, EN::INTERNET_DOMAIN_SUFFIX));
                domain
            })
            .collect();
        Catalog { cities, domains }
    }

    pub(crate) fn city(&self, rng: &mut RowRng) -> &City {
        &self.cities[rng.random_range(0..self.cities.len())]
    }

    pub(crate) fn domain(&self, rng: &mut RowRng) -> &str {
        &self.domains[rng.random_range(0..self.domains.len())]
    }
}

/// A pool of client IPs or device ids: `size` distinct entries, each derived from its index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pool {
    pub(crate) seed: u64,
    pub(crate) scope: u64,
    pub(crate) size: u64,
}

impl Pool {
    pub(crate) fn pick_index(&self, rng: &mut RowRng) -> u64 {
        rng.random_range(0..self.size)
    }

    /// Pushes the public IPv4 address with this index.
    pub(crate) fn push_ip(&self, index: u64, buf: &mut String) {
        let mut rng = item_rng(self.seed, Stream::Ip, self.scope, index);
        let ip = loop {
            let candidate: u32 = rng.random();
            if is_public_ipv4(candidate) {
                break candidate;
            }
        };
        let [a, b, c, d] = ip.to_be_bytes();
        let _ = write!(buf, "{a}.{b}.{c}.{d}");
    }

    /// Pushes the device id with this index: 16 upper-case hex digits, as mobile SDKs report
    /// advertising ids in the reference data.
    pub(crate) fn push_device(&self, index: u64, buf: &mut String) {
        let mut rng = item_rng(self.seed, Stream::Device, self.scope, index);
        let _ = write!(buf, "{:016X}", rng.random::<u64>());
    }
}

/// Whether an address is outside every private, shared, loopback, link-local, documentation,
/// benchmarking, multicast and reserved range.
pub(crate) fn is_public_ipv4(ip: u32) -> bool {
    let [a, b, c, _] = ip.to_be_bytes();
    !(a == 0
        || a == 10
        || a == 127
        || a >= 224
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113))
}

/// Pushes a product name ("Tablet Sony X10") and returns its category.
pub(crate) fn push_product(rng: &mut RowRng, buf: &mut String) -> &'static str {
    let (product, category) = pick(rng, &PRODUCTS);
    buf.push_str(product);
    buf.push(' ');
    buf.push_str(pick(rng, &BRANDS));
    buf.push(' ');
    buf.push_str(pick(rng, &MODELS));
    category
}

pub(crate) fn email_domain(rng: &mut RowRng) -> &'static str {
    pick(rng, &EMAIL_DOMAINS)
}

pub(crate) fn user_agent(rng: &mut RowRng) -> &'static str {
    pick(rng, EN::INTERNET_USER_AGENT)
}

/// Pushes a path of one or two words, as in `https://www.domain.com/case/world`.
pub(crate) fn push_url_path(rng: &mut RowRng, buf: &mut String) {
    buf.push_str(pick(rng, EN::PATH_SEGMENTS));
    if rng.random_bool(0.6) {
        buf.push('/');
        buf.push_str(pick(rng, EN::PATH_SEGMENTS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        let addr = |a: u8, b: u8, c: u8, d: u8| u32::from_be_bytes([a, b, c, d]);
        for private in [
            addr(10, 1, 2, 3),
            addr(192, 168, 0, 1),
            addr(172, 20, 0, 1),
            addr(127, 0, 0, 1),
            addr(169, 254, 1, 1),
            addr(100, 100, 1, 1),
            addr(224, 0, 0, 1),
            addr(0, 1, 2, 3),
            addr(203, 0, 113, 9),
        ] {
            assert!(!is_public_ipv4(private), "{private:x}");
        }
        for public in [addr(8, 8, 8, 8), addr(172, 32, 0, 1), addr(52, 94, 1, 200)] {
            assert!(is_public_ipv4(public), "{public:x}");
        }
    }

    #[test]
    fn catalog_is_a_function_of_the_seed() {
        let a = Catalog::new(1);
        let b = Catalog::new(1);
        let c = Catalog::new(2);
        assert_eq!(a.domains, b.domains);
        assert_ne!(a.domains, c.domains);
        assert!(
            a.cities
                .iter()
                .all(|c| (10_000..99_990).contains(&c.postcode_base))
        );
        assert!(
            a.domains
                .iter()
                .all(|d| d.contains('.') && !d.starts_with('.'))
        );
    }
}
