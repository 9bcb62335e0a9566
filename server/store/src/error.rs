//! What can go wrong in the store, and what each failure is called where
//! clients see it: one public code and one HTTP status per failure, used
//! alike by the JSON APIs, the screens' server functions and the command
//! line's `--json`.

/// What can go wrong in the store. [`StoreError::code`] names it for
/// clients; `Database` details are only logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no organization named {0:?}")]
    UnknownOrganization(String),
    #[error("no product with code {0:?}")]
    UnknownProduct(String),
    #[error("no device with serial {0:?}")]
    UnknownDevice(String),
    #[error("no webhook with id {0}")]
    UnknownWebhook(i64),
    #[error("serial {0:?} is not on the ignore list")]
    NotIgnored(String),
    #[error("no seats available for this product")]
    NoSeatsAvailable,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database could not complete the work (a group of check-ins rolled
    /// back, or the store is shutting down); nothing was changed.
    #[error("the database could not complete the request: {0}")]
    Unavailable(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        StoreError::Invalid(message.into())
    }

    /// The public name of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::UnknownOrganization(_) => ErrorCode::UnknownOrganization,
            StoreError::UnknownProduct(_) => ErrorCode::UnknownProduct,
            StoreError::UnknownDevice(_) => ErrorCode::UnknownDevice,
            StoreError::UnknownWebhook(_) => ErrorCode::UnknownWebhook,
            StoreError::NotIgnored(_) => ErrorCode::NotIgnored,
            StoreError::NoSeatsAvailable => ErrorCode::NoSeatsAvailable,
            StoreError::Conflict(_) => ErrorCode::Conflict,
            StoreError::Invalid(_) => ErrorCode::InvalidRequest,
            StoreError::Database(_) | StoreError::Migrate(_) | StoreError::Unavailable(_) => ErrorCode::Internal,
        }
    }

    /// The words a client may see: the error's own, but for a failure of the
    /// server's, whose details are for its log.
    pub fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => "the server could not complete the request; nothing was changed".to_owned(),
            _ => self.to_string(),
        }
    }
}

/// The public codes of store failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    UnknownOrganization,
    UnknownProduct,
    UnknownDevice,
    UnknownWebhook,
    NotIgnored,
    NoSeatsAvailable,
    Conflict,
    InvalidRequest,
    Internal,
}

impl ErrorCode {
    const ALL: [ErrorCode; 9] = [
        ErrorCode::UnknownOrganization,
        ErrorCode::UnknownProduct,
        ErrorCode::UnknownDevice,
        ErrorCode::UnknownWebhook,
        ErrorCode::NotIgnored,
        ErrorCode::NoSeatsAvailable,
        ErrorCode::Conflict,
        ErrorCode::InvalidRequest,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownOrganization => "unknown_organization",
            ErrorCode::UnknownProduct => "unknown_product",
            ErrorCode::UnknownDevice => "unknown_device",
            ErrorCode::UnknownWebhook => "unknown_webhook",
            ErrorCode::NotIgnored => "not_ignored",
            ErrorCode::NoSeatsAvailable => "no_seats_available",
            ErrorCode::Conflict => "conflict",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Internal => "internal_error",
        }
    }

    /// The HTTP status of an answer that reports it.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::UnknownOrganization
            | ErrorCode::UnknownProduct
            | ErrorCode::UnknownDevice
            | ErrorCode::UnknownWebhook
            | ErrorCode::NotIgnored => 404,
            ErrorCode::NoSeatsAvailable | ErrorCode::Conflict => 409,
            ErrorCode::InvalidRequest => 400,
            ErrorCode::Internal => 500,
        }
    }

    /// The code of this name, if it is one.
    pub fn parse(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|code| code.as_str() == name)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_as_itself() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("signed_out"), None);
    }
}
