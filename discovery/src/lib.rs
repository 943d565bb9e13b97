//! `ocelot-discovery`: where services find each other beyond static addresses.
//!
//! - [`consul`]: each service registers itself in a Consul agent with a TTL health check,
//!   keeps the check passing, and deregisters on shutdown; the CLI finds an admin through
//!   Consul's health endpoint (`--admin consul://service-name`).

pub mod consul;

/// This machine's host name (`/etc/hostname`), when it has one: how services name themselves.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}
