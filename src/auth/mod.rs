//! Credentials: password hashing, access and refresh tokens, and the
//! in-memory views that keep revocation and lockout checks off the database.

pub mod lockout;
pub mod passwords;
pub mod revocation;
pub mod tokens;

pub use lockout::UnknownLoginGuard;
pub use passwords::PasswordHasher;
pub use revocation::RevokedSessions;
pub use tokens::{AccessClaims, TokenKeys};
