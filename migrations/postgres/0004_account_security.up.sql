-- two-factor authentication, email verification, password reset and the
-- idle-session sweep.

-- when the address was proven to be the user's (a verification token was
-- spent); null: not verified.
alter table users add column email_verified_at bigint;
-- the last totp step accepted for this user. a step is accepted once
-- (rfc 6238 section 5.2), so a code seen by someone else is useless.
alter table users add column totp_last_step bigint;

create table recovery_codes (
    user_id text collate "C" not null references users (id) on delete cascade,
    -- hex sha-256 of the code: the code itself is shown once, never stored
    code_hash text not null,
    created_at bigint not null,
    -- set when spent; a code is good once
    used_at bigint,
    primary key (user_id, code_hash)
);

-- one-time tokens sent by mail: 'verify_email' and 'password_reset'.
create table account_tokens (
    -- hex sha-256 of the token: the token itself is only in the mail
    token_hash text primary key,
    user_id text collate "C" not null references users (id) on delete cascade,
    purpose text not null,
    -- a digest of the password hash when the token was made: once the
    -- password changes, the token is useless
    password_stamp text not null,
    created_at bigint not null,
    expires_at bigint not null,
    used_at bigint
);

create index account_tokens_user_id_idx on account_tokens (user_id);
-- the idle-session sweep looks for live sessions not seen since a time
create index sessions_last_seen_at_idx on sessions (last_seen_at);
