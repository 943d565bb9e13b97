//! Numbers that say what they are: a build's [`Attempt`], an event's [`Seq`] within one, and
//! the ids of builds ([`BuildId`]) and repositories ([`RepoId`]).
//!
//! Each has one mapping to the wire (`uint32` attempt, `uint64` seq, `int64` ids in
//! `ocelot.v1`; lossless both ways) and one to the database (`INT` attempt, `BIGINT` seq,
//! `BIGSERIAL` ids): a stored value out of range is an [`OutOfRange`] error, never quietly 0.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::num::ParseIntError;
use std::str::FromStr;

/// A stored number that does not fit the type it stands for (a negative attempt or seq, an
/// id below 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value} is out of range")]
pub struct OutOfRange {
    /// What the number stands for: `attempt`, `seq`, `build id`, `repo id`.
    pub kind: &'static str,
    pub value: i64,
}

/// An attempt of a build: 0 until a worker claims it, then 1, 2, ... (each claim adds one;
/// the attempt fences every write of older ones).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Attempt(u32);

impl Attempt {
    /// Not yet claimed by any worker.
    pub const NONE: Attempt = Attempt(0);
    /// The first claim.
    pub const FIRST: Attempt = Attempt(1);

    /// The attempt after this one (saturating at `u32::MAX`).
    pub fn next(self) -> Attempt {
        Attempt(self.0.saturating_add(1))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The value of the `attempt` column. An attempt beyond `i32::MAX` (from the wire: none
    /// is ever stored) is `i32::MAX`, which no stored attempt exceeds.
    pub fn to_db(self) -> i32 {
        i32::try_from(self.0).unwrap_or(i32::MAX)
    }

    /// Reads the `attempt` column; a negative value is corrupt.
    pub fn from_db(value: i32) -> Result<Attempt, OutOfRange> {
        u32::try_from(value).map(Attempt).map_err(|_| OutOfRange {
            kind: "attempt",
            value: i64::from(value),
        })
    }
}

impl From<u32> for Attempt {
    fn from(value: u32) -> Self {
        Attempt(value)
    }
}

impl From<Attempt> for u32 {
    fn from(attempt: Attempt) -> Self {
        attempt.0
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The sequence number of an event within one attempt's log: 1, 2, ...; 0 is before the
/// first event.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(u64);

impl Seq {
    /// Before the first event.
    pub const START: Seq = Seq(0);

    /// The seq after this one (saturating at `u64::MAX`).
    pub fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// The value of a `seq` column. A seq beyond `i64::MAX` (from the wire: none is ever
    /// stored) is `i64::MAX`, which no stored seq exceeds.
    pub fn to_db(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// Reads a `seq` column; a negative value is corrupt.
    pub fn from_db(value: i64) -> Result<Seq, OutOfRange> {
        u64::try_from(value)
            .map(Seq)
            .map_err(|_| OutOfRange { kind: "seq", value })
    }
}

impl From<u64> for Seq {
    fn from(value: u64) -> Self {
        Seq(value)
    }
}

impl From<Seq> for u64 {
    fn from(seq: Seq) -> Self {
        seq.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The id of a build (the `builds.id` column, a `BIGSERIAL`): 1, 2, ... once stored. On the
/// wire (`int64`), in JSON (a bare number) and in text (`ocelot watch 42`, `logs.42`) it is
/// the number itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BuildId(i64);

impl BuildId {
    pub fn get(self) -> i64 {
        self.0
    }

    /// The value of a build id column.
    pub fn to_db(self) -> i64 {
        self.0
    }

    /// Reads a build id column; a value below 1 (never issued by a `BIGSERIAL`) is corrupt.
    pub fn from_db(value: i64) -> Result<BuildId, OutOfRange> {
        if value >= 1 {
            Ok(BuildId(value))
        } else {
            Err(OutOfRange {
                kind: "build id",
                value,
            })
        }
    }
}

impl From<i64> for BuildId {
    fn from(value: i64) -> Self {
        BuildId(value)
    }
}

impl From<BuildId> for i64 {
    fn from(id: BuildId) -> Self {
        id.0
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Parses the number, as an `i64` would (the CLI's `BUILD` arguments).
impl FromStr for BuildId {
    type Err = ParseIntError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(BuildId)
    }
}

/// The id of a repository (the `repos.id` column, a `BIGSERIAL`): 1, 2, ... once stored. On
/// the wire (`int64`), in JSON (a bare number) and in text it is the number itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RepoId(i64);

impl RepoId {
    pub fn get(self) -> i64 {
        self.0
    }

    /// The value of a repo id column.
    pub fn to_db(self) -> i64 {
        self.0
    }

    /// Reads a repo id column; a value below 1 (never issued by a `BIGSERIAL`) is corrupt.
    pub fn from_db(value: i64) -> Result<RepoId, OutOfRange> {
        if value >= 1 {
            Ok(RepoId(value))
        } else {
            Err(OutOfRange {
                kind: "repo id",
                value,
            })
        }
    }
}

impl From<i64> for RepoId {
    fn from(value: i64) -> Self {
        RepoId(value)
    }
}

impl From<RepoId> for i64 {
    fn from(id: RepoId) -> Self {
        id.0
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Parses the number, as an `i64` would.
impl FromStr for RepoId {
    type Err = ParseIntError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(RepoId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_from_none() {
        assert_eq!(Attempt::default(), Attempt::NONE);
        assert_eq!(Attempt::NONE.next(), Attempt::FIRST);
        assert_eq!(Attempt::FIRST.next().get(), 2);
        assert!(Attempt::NONE < Attempt::FIRST);
        assert_eq!(Attempt::from(u32::MAX).next().get(), u32::MAX);
        assert_eq!(Attempt::from(3).to_string(), "3");
    }

    #[test]
    fn attempts_cross_the_wire_unchanged() {
        for value in [0, 1, 7, i32::MAX as u32, u32::MAX] {
            assert_eq!(u32::from(Attempt::from(value)), value);
        }
    }

    #[test]
    fn attempts_map_to_the_database_and_back() {
        for value in [0, 1, 7, i32::MAX] {
            let attempt = Attempt::from_db(value).unwrap();
            assert_eq!(attempt.to_db(), value);
        }
        assert_eq!(Attempt::from(u32::MAX).to_db(), i32::MAX);
    }

    #[test]
    fn a_negative_stored_attempt_is_out_of_range_not_zero() {
        for value in [-1, i32::MIN] {
            let error = Attempt::from_db(value).unwrap_err();
            assert_eq!(
                error,
                OutOfRange {
                    kind: "attempt",
                    value: i64::from(value)
                }
            );
        }
        assert_eq!(
            Attempt::from_db(-1).unwrap_err().to_string(),
            "attempt -1 is out of range"
        );
    }

    #[test]
    fn seqs_count_from_start() {
        assert_eq!(Seq::default(), Seq::START);
        assert_eq!(Seq::START.next().get(), 1);
        assert_eq!(Seq::from(u64::MAX).next().get(), u64::MAX);
        assert_eq!(Seq::from(42).to_string(), "42");
    }

    #[test]
    fn seqs_cross_the_wire_unchanged() {
        for value in [0, 1, 7, i64::MAX as u64, u64::MAX] {
            assert_eq!(u64::from(Seq::from(value)), value);
        }
    }

    #[test]
    fn seqs_map_to_the_database_and_back() {
        for value in [0, 1, 7, i64::MAX] {
            assert_eq!(Seq::from_db(value).unwrap().to_db(), value);
        }
        assert_eq!(Seq::from(u64::MAX).to_db(), i64::MAX);
    }

    #[test]
    fn a_negative_stored_seq_is_out_of_range_not_zero() {
        for value in [-1, i64::MIN] {
            assert_eq!(
                Seq::from_db(value).unwrap_err(),
                OutOfRange { kind: "seq", value }
            );
        }
        assert_eq!(
            Seq::from_db(-5).unwrap_err().to_string(),
            "seq -5 is out of range"
        );
    }

    #[test]
    fn ids_print_and_parse_as_the_number() {
        assert_eq!(BuildId::from(42).to_string(), "42");
        assert_eq!(RepoId::from(7).to_string(), "7");
        assert_eq!("42".parse::<BuildId>().unwrap(), BuildId::from(42));
        assert_eq!("7".parse::<RepoId>().unwrap(), RepoId::from(7));
        assert_eq!(format!("logs.{}", BuildId::from(9)), "logs.9");
    }

    #[test]
    fn a_malformed_id_fails_to_parse_as_an_i64_would() {
        for text in ["", "abc", "1.5", "99999999999999999999"] {
            assert_eq!(
                text.parse::<BuildId>().unwrap_err(),
                text.parse::<i64>().unwrap_err()
            );
            assert_eq!(
                text.parse::<RepoId>().unwrap_err(),
                text.parse::<i64>().unwrap_err()
            );
        }
        assert_eq!(
            "abc".parse::<BuildId>().unwrap_err().to_string(),
            "invalid digit found in string"
        );
    }

    #[test]
    fn ids_cross_the_wire_unchanged() {
        for value in [i64::MIN, -1, 0, 1, 7, i64::MAX] {
            assert_eq!(i64::from(BuildId::from(value)), value);
            assert_eq!(i64::from(RepoId::from(value)), value);
            assert_eq!(BuildId::from(value).get(), value);
            assert_eq!(RepoId::from(value).get(), value);
        }
    }

    #[test]
    fn ids_map_to_the_database_and_back() {
        for value in [1, 7, i64::MAX] {
            assert_eq!(BuildId::from_db(value).unwrap().to_db(), value);
            assert_eq!(RepoId::from_db(value).unwrap().to_db(), value);
        }
    }

    #[test]
    fn a_stored_id_below_one_is_out_of_range() {
        for value in [0, -1, i64::MIN] {
            assert_eq!(
                BuildId::from_db(value).unwrap_err(),
                OutOfRange {
                    kind: "build id",
                    value
                }
            );
            assert_eq!(
                RepoId::from_db(value).unwrap_err(),
                OutOfRange {
                    kind: "repo id",
                    value
                }
            );
        }
        assert_eq!(
            BuildId::from_db(0).unwrap_err().to_string(),
            "build id 0 is out of range"
        );
        assert_eq!(
            RepoId::from_db(-3).unwrap_err().to_string(),
            "repo id -3 is out of range"
        );
    }

    #[test]
    fn ids_order_and_hash_as_the_number() {
        use std::collections::HashSet;
        assert!(BuildId::from(2) < BuildId::from(10));
        assert!(RepoId::from(2) < RepoId::from(10));
        let ids: HashSet<BuildId> = [1, 2, 1].into_iter().map(BuildId::from).collect();
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn json_is_the_bare_number() {
        assert_eq!(serde_json::to_string(&BuildId::from(12)).unwrap(), "12");
        assert_eq!(serde_json::to_string(&RepoId::from(5)).unwrap(), "5");
        assert_eq!(serde_json::from_str::<BuildId>("12").unwrap().get(), 12);
        assert_eq!(serde_json::from_str::<RepoId>("5").unwrap().get(), 5);
        assert!(serde_json::from_str::<BuildId>("\"12\"").is_err());
        assert_eq!(serde_json::to_string(&Attempt::from(2)).unwrap(), "2");
        assert_eq!(serde_json::to_string(&Seq::from(9)).unwrap(), "9");
        assert_eq!(serde_json::from_str::<Attempt>("3").unwrap().get(), 3);
        assert_eq!(serde_json::from_str::<Seq>("4").unwrap().get(), 4);
        assert!(serde_json::from_str::<Attempt>("-1").is_err());
    }
}
