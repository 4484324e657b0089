-- reverts 0001_accounts.up.sql: children before parents because of the
-- foreign keys. dropping a table drops its indexes.
drop table audit_log;
drop table refresh_tokens;
drop table sessions;
drop table users;
