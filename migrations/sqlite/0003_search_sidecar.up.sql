-- full-text search moves out of this file: the index now lives in a
-- database file of its own (`<name>.search.db`, see src/storage/search.rs),
-- filled by a background indexer, so indexing and its segment merges never
-- hold this database's write lock while messages are being stored.
--
-- what stays here is the indexer's to-do list for rows that change after
-- they were indexed: an edit, a delete (the tombstone empties the body) or a
-- row removed outright (a room deleted). new rows need no entry: the
-- indexer follows `messages.num` upwards.
drop trigger messages_fts_after_insert;
drop trigger messages_fts_after_delete;
drop trigger messages_fts_after_update;
drop table messages_fts;

create table search_dirty (
    -- the order the changes happened in; the indexer removes what it has
    -- processed by this id, so a change made meanwhile is never lost
    id integer primary key,
    num integer not null
) strict;

create trigger messages_search_after_delete after delete on messages begin
    insert into search_dirty (num) values (old.num);
end;

create trigger messages_search_after_update after update of body, deleted on messages begin
    insert into search_dirty (num) values (new.num);
end;

-- the generation of this database the index was built for: set anew each
-- time this migration runs, so an index made before a trip back to 0002
-- (while an older binary changed messages without listing them above) is
-- recognised and rebuilt.
create table search_epoch (epoch text not null) strict;
insert into search_epoch (epoch) values (lower(hex(randomblob(16))));
