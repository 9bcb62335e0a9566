//! Organizations, their settings and the server's signing keys.

#[allow(unused_imports)]
use super::*;

/// An organization's row id. Only the store makes these, after resolving a key
/// or a name, so holding one means the organization exists (or did a moment ago).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrgId(pub(crate) i64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
}

/// What `org list` shows of each organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrganizationSummary {
    pub name: String,
    pub products: i64,
    pub devices: i64,
    pub created_at: Timestamp,
}

/// A newly created organization with both of its keys, shown in full once.
#[derive(Debug, Clone, Serialize)]
pub struct NewOrganization {
    pub name: String,
    pub admin_key: String,
    pub product_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub organization_name: String,
    pub product_key: String,
}

/// One of the server's Ed25519 signing keys as stored. The secret never
/// leaves the server; the public half is published.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub secret: Vec<u8>,
    pub public: Vec<u8>,
    pub created_at: Timestamp,
    /// `None` for the key that signs now.
    pub retired_at: Option<Timestamp>,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}
