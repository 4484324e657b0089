-- accounts and sessions: users, their login sessions, the refresh tokens that
-- keep a session alive, and the audit log.
--
-- conventions shared with migrations/sqlite (so one set of rust row types
-- decodes from both databases):
-- * ids are uuid strings (uuidv7, so they sort by creation time), kept as
--   text rather than uuid because sqlite has no uuid type;
-- * times are unix milliseconds in bigint columns, utc;
-- * booleans are boolean.
-- id columns use the "c" collation: keyset pagination compares ids, and byte
-- order is what makes uuidv7 strings sort by time (and matches sqlite).

create table users (
    id text collate "C" primary key,
    -- the application folds username and email to lowercase before storing,
    -- so these unique keys are case-insensitive in effect. the constraint names
    -- are spelled out because error mapping reads the field from them.
    username text not null constraint users_username_key unique,
    email text not null constraint users_email_key unique,
    -- phc string (argon2id)
    password_hash text not null,
    display_name text,
    bio text,
    avatar_url text,
    -- no check constraints on role/status, as in sqlite (which cannot alter
    -- one): the rust enums reject unknown values on read.
    role text not null default 'user',
    status text not null default 'active',
    two_factor_enabled boolean not null default false,
    -- base32 totp secret, set by the 2fa setup flow
    totp_secret text,
    -- consecutive failed logins; reset to 0 on success and when a lock starts
    failed_logins integer not null default 0 check (failed_logins >= 0),
    locked_until bigint,
    created_at bigint not null,
    updated_at bigint not null
);

create table sessions (
    id text collate "C" primary key,
    -- a deleted account takes its sessions (and their tokens) with it
    user_id text collate "C" not null references users (id) on delete cascade,
    user_agent text,
    ip text,
    created_at bigint not null,
    last_seen_at bigint not null,
    -- a revoked session is kept (not deleted) so the revocation can be replayed
    -- into the in-memory view at start and shown in the admin api
    revoked_at bigint,
    revoked_reason text
);

-- listing a user's sessions and revoking all of them
create index sessions_user_id_idx on sessions (user_id);
-- rebuilding the revocation view at start (revoked_at >= $1)
create index sessions_revoked_at_idx on sessions (revoked_at);

create table refresh_tokens (
    -- hex sha-256 of the opaque token: the token itself is never stored
    token_hash text primary key,
    session_id text collate "C" not null references sessions (id) on delete cascade,
    created_at bigint not null,
    expires_at bigint not null,
    -- set when rotated; presenting a spent token again revokes the session
    spent_at bigint
);

-- the cascade from sessions looks tokens up by session
create index refresh_tokens_session_id_idx on refresh_tokens (session_id);

create table audit_log (
    id text collate "C" primary key,
    at bigint not null,
    -- no foreign keys: the log must outlive the accounts and sessions it names
    actor_id text collate "C",
    action text not null,
    target_type text,
    target_id text,
    ip text,
    user_agent text,
    request_id text,
    -- a json object, as text so the sql is shared with sqlite; the check keeps
    -- it valid, and a later migration can switch it to jsonb if search needs it
    details text not null default '{}' check (details::jsonb is not null)
);

-- the admin api filters by time range, action and actor
create index audit_log_at_idx on audit_log (at);
create index audit_log_action_idx on audit_log (action);
create index audit_log_actor_id_idx on audit_log (actor_id);
