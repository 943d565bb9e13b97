//! Where services find each other beyond static addresses.
//!
//! - [`consul`]: each service registers itself in a Consul agent with a TTL health check,
//!   keeps the check passing, and deregisters on shutdown; the CLI finds an admin through
//!   Consul's health endpoint (`--admin consul://service-name`).

pub mod consul;
