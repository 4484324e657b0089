-- users' settings: one json document per user who saved any; a user without
-- a row has the defaults, so registering writes nothing here. the document
-- is read leniently (missing fields take their defaults), so adding a
-- setting later needs no migration.
create table user_settings (
    user_id text not null primary key references users (id) on delete cascade,
    settings text not null check (json_valid(settings)),
    updated_at integer not null
) strict;
