//! Credentials: password hashing, access and refresh tokens, and the
//! in-memory views that keep revocation and lockout checks off the database.

pub mod hourly;
pub mod keys;
pub mod lockout;
pub mod passwords;
pub mod revocation;
pub mod tokens;
pub mod totp;

pub use lockout::LoginGuard;
pub use passwords::PasswordHasher;
pub use revocation::RevokedSessions;
pub use tokens::{AccessClaims, TokenKeys};
