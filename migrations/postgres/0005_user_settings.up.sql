-- users' settings: one json document per user who saved any; a user without
-- a row has the defaults, so registering writes nothing here. the document
-- is read leniently (missing fields take their defaults), so adding a
-- setting later needs no migration. text rather than jsonb, as in sqlite,
-- so the sql is shared.
create table user_settings (
    user_id text collate "C" primary key references users (id) on delete cascade,
    settings text not null,
    updated_at bigint not null
);

-- the user search matches prefixes of usernames and lowercased display
-- names with `like 'prefix%'`; pattern_ops indexes serve that whatever the
-- database's collation.
create index users_username_pattern_idx on users (username text_pattern_ops);
create index users_display_name_pattern_idx on users (lower(display_name) text_pattern_ops);
