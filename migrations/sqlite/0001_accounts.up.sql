-- accounts and sessions: users, their login sessions, the refresh tokens that
-- keep a session alive, and the audit log.
--
-- conventions shared with migrations/postgres (so one set of rust row types
-- decodes from both databases):
-- * ids are uuid strings (uuidv7, so they sort by creation time);
-- * times are unix milliseconds in integer columns, utc;
-- * booleans are 0/1 integers, which sqlx decodes as bool.
-- tables are strict so a wrongly typed bind fails loudly instead of being
-- stored as whatever type it happened to have.

create table users (
    id text not null primary key,
    -- the application folds username and email to lowercase before storing,
    -- so these unique keys are case-insensitive in effect. the constraint names
    -- match postgresql's, and error mapping reads the field from them.
    username text not null constraint users_username_key unique,
    email text not null constraint users_email_key unique,
    -- phc string (argon2id)
    password_hash text not null,
    display_name text,
    bio text,
    avatar_url text,
    -- no check constraints on role/status: sqlite cannot alter a check without
    -- rebuilding the table, and the rust enums reject unknown values on read.
    role text not null default 'user',
    status text not null default 'active',
    two_factor_enabled integer not null default 0 check (two_factor_enabled in (0, 1)),
    -- base32 totp secret, set by the 2fa setup flow
    totp_secret text,
    -- consecutive failed logins; reset to 0 on success and when a lock starts
    failed_logins integer not null default 0 check (failed_logins >= 0),
    locked_until integer,
    created_at integer not null,
    updated_at integer not null
) strict;

create table sessions (
    id text not null primary key,
    -- a deleted account takes its sessions (and their tokens) with it
    user_id text not null references users (id) on delete cascade,
    user_agent text,
    ip text,
    created_at integer not null,
    last_seen_at integer not null,
    -- a revoked session is kept (not deleted) so the revocation can be replayed
    -- into the in-memory view at start and shown in the admin api
    revoked_at integer,
    revoked_reason text
) strict;

-- listing a user's sessions and revoking all of them
create index sessions_user_id_idx on sessions (user_id);
-- rebuilding the revocation view at start (revoked_at >= ?)
create index sessions_revoked_at_idx on sessions (revoked_at);

create table refresh_tokens (
    -- hex sha-256 of the opaque token: the token itself is never stored
    token_hash text not null primary key,
    session_id text not null references sessions (id) on delete cascade,
    created_at integer not null,
    expires_at integer not null,
    -- set when rotated; presenting a spent token again revokes the session
    spent_at integer
) strict;

-- the cascade from sessions looks tokens up by session
create index refresh_tokens_session_id_idx on refresh_tokens (session_id);

create table audit_log (
    id text not null primary key,
    at integer not null,
    -- no foreign keys: the log must outlive the accounts and sessions it names
    actor_id text,
    action text not null,
    target_type text,
    target_id text,
    ip text,
    user_agent text,
    request_id text,
    -- a json object, as text (postgresql keeps text too, so the sql is shared)
    details text not null default '{}' check (json_valid(details))
) strict;

-- the admin api filters by time range, action and actor
create index audit_log_at_idx on audit_log (at);
create index audit_log_action_idx on audit_log (action);
create index audit_log_actor_id_idx on audit_log (actor_id);
