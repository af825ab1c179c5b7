//! Seeding and index permutations.
//!
//! Every generated value comes from a random stream addressed by `(seed, stream, scope,
//! index)`: the person with index 42 always gets the same name, and row 1,000 of a dataset is
//! the same whether it was made by the first or the eighth thread. That is what makes the
//! output byte-identical for any thread count, and what lets an incremental batch name the
//! people of the initial population without reading the initial files.

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// The generator behind every row: small, fast, and specified (so the same seed gives the
/// same data on every platform and with every version of this crate's dependencies).
pub(crate) type RowRng = Xoshiro256PlusPlus;

/// The independent random streams. Their numbers are part of the output format: changing one
/// changes every file generated with it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Person = 1,
    Profile = 2,
    ProfileUpdate = 3,
    City = 4,
    Domain = 5,
    Ip = 6,
    Device = 7,
    Transaction = 8,
    Visit = 9,
    Permutation = 10,
    /// Who is fragmented and how (identity resolution's test material).
    Fragment = 11,
}

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn combine(a: u64, b: u64) -> u64 {
    splitmix64(a ^ splitmix64(b))
}

/// The generator for one item of one stream. `scope` separates the initial population (0)
/// from each incremental batch (its timestamp as a number).
pub(crate) fn item_rng(seed: u64, stream: Stream, scope: u64, index: u64) -> RowRng {
    RowRng::seed_from_u64(combine(combine(combine(seed, stream as u64), scope), index))
}

/// A seeded 64-bit value, for choosing permutation parameters.
pub(crate) fn salt(seed: u64, stream: Stream, scope: u64) -> u64 {
    combine(combine(seed, stream as u64), scope)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A permutation of `0..n` of the form `i -> (a * i + b) mod n` with `gcd(a, n) = 1`. Used to
/// turn a sequential index into an identifier that looks random but can never collide.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Permutation {
    n: u64,
    a: u64,
    b: u64,
}

impl Permutation {
    pub(crate) fn new(n: u64, salt: u64) -> Permutation {
        debug_assert!(n > 0);
        // A multiplier well away from 0 and 1 so that neighbours land far apart.
        let mut a = (splitmix64(salt) % n.max(2)) | 1;
        if n > 16 {
            a = a.max(n / 3 + 1);
        }
        while gcd(a, n) != 1 {
            a += 1;
        }
        Permutation {
            n,
            a: a % n.max(1),
            b: splitmix64(salt ^ 0xA5A5_A5A5) % n,
        }
    }

    /// The image of `i` (which must be below `n`).
    pub(crate) fn apply(&self, i: u64) -> u64 {
        debug_assert!(i < self.n);
        ((u128::from(self.a) * u128::from(i) + u128::from(self.b)) % u128::from(self.n)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn permutations_are_bijections() {
        for n in [1u64, 2, 7, 10, 16, 97, 1000, 4096, 9999] {
            for salt in [0u64, 1, 42, 0xDEAD_BEEF] {
                let p = Permutation::new(n, salt);
                let mut seen = vec![false; n as usize];
                for i in 0..n {
                    let j = p.apply(i) as usize;
                    assert!(!seen[j], "n={n} salt={salt}: {j} hit twice");
                    seen[j] = true;
                }
            }
        }
    }

    #[test]
    fn item_streams_are_independent_and_repeatable() {
        let draw = |stream, scope, index| item_rng(7, stream, scope, index).random::<u64>();
        assert_eq!(draw(Stream::Person, 0, 5), draw(Stream::Person, 0, 5));
        assert_ne!(draw(Stream::Person, 0, 5), draw(Stream::Person, 0, 6));
        assert_ne!(draw(Stream::Person, 0, 5), draw(Stream::Profile, 0, 5));
        assert_ne!(draw(Stream::Person, 0, 5), draw(Stream::Person, 1, 5));
    }
}
