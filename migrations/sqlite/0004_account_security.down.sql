-- reverts 0004_account_security.up.sql.
drop index sessions_last_seen_at_idx;
drop table account_tokens;
drop table recovery_codes;
alter table users drop column totp_last_step;
alter table users drop column email_verified_at;
