//! Which service owns which public path. The one place that knows it: adding a route to a
//! service under an existing prefix needs no change here.

use std::fmt;

/// A service the gateway routes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Users,
    Catalog,
    Inventory,
    Orders,
    Payments,
    Webhooks,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Users,
        Service::Catalog,
        Service::Inventory,
        Service::Orders,
        Service::Payments,
        Service::Webhooks,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Users => "users",
            Service::Catalog => "catalog",
            Service::Inventory => "inventory",
            Service::Orders => "orders",
            Service::Payments => "payments",
            Service::Webhooks => "webhooks",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|service| service.name() == name)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Path prefixes, each with the service that owns everything below it.
const OWNERS: [(&str, Service); 23] = [
    ("/api/v1/auth", Service::Users),
    ("/api/v1/users", Service::Users),
    ("/.well-known/jwks.json", Service::Users),
    ("/api/v1/products", Service::Catalog),
    ("/api/v1/inventory", Service::Inventory),
    ("/api/v1/orders", Service::Orders),
    ("/api/v1/payments", Service::Payments),
    ("/api/v1/admin/users", Service::Users),
    ("/api/v1/admin/orders", Service::Orders),
    ("/api/v1/admin/payments", Service::Payments),
    ("/api/v1/admin/webhooks", Service::Webhooks),
    // Each service keeps the dead letters of its consumers.
    ("/api/v1/admin/dlq/users", Service::Users),
    ("/api/v1/admin/dlq/catalog", Service::Catalog),
    ("/api/v1/admin/dlq/inventory", Service::Inventory),
    ("/api/v1/admin/dlq/orders", Service::Orders),
    ("/api/v1/admin/dlq/payments", Service::Payments),
    ("/api/v1/admin/dlq/webhooks", Service::Webhooks),
    ("/api/v1/admin/events/users", Service::Users),
    ("/api/v1/admin/events/catalog", Service::Catalog),
    ("/api/v1/admin/events/inventory", Service::Inventory),
    ("/api/v1/admin/events/orders", Service::Orders),
    ("/api/v1/admin/events/payments", Service::Payments),
    ("/api/v1/admin/events/webhooks", Service::Webhooks),
];

/// The prefixes services own, for the proxy's routes.
pub fn prefixes() -> impl Iterator<Item = &'static str> {
    OWNERS.iter().map(|(prefix, _)| *prefix)
}

/// The service that owns `path`, matching whole segments (`/api/v1/ordersx` is nobody's).
pub fn owner(path: &str) -> Option<Service> {
    OWNERS.iter().find_map(|(prefix, service)| {
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')).then_some(*service)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert_eq!(owner("/api/v1/orders"), Some(Service::Orders));
        assert_eq!(owner("/api/v1/orders/123/cancel"), Some(Service::Orders));
        assert_eq!(owner("/api/v1/ordersx"), None);
        assert_eq!(owner("/api/v1/auth/login"), Some(Service::Users));
        assert_eq!(owner("/.well-known/jwks.json"), Some(Service::Users));
        assert_eq!(
            owner("/api/v1/admin/dlq/payments/1/replay"),
            Some(Service::Payments)
        );
        assert_eq!(owner("/api/v1/admin/dlq"), None);
        assert_eq!(owner("/api/v1/admin/orders"), Some(Service::Orders));
        assert_eq!(owner("/api/v1/admin/users/1/admin"), Some(Service::Users));
        assert_eq!(owner("/api/v2/orders"), None);
        assert_eq!(owner("/"), None);
    }

    #[test]
    fn every_service_round_trips_its_name() {
        for service in Service::ALL {
            assert_eq!(Service::parse(service.name()), Some(service));
        }
    }
}
