-- reverts 0003_search_sidecar.up.sql: the full-text index comes back into
-- this file, as 0002 made it, and is rebuilt from the messages. the search
-- file beside the database is left alone (a newer binary rebuilds it).
drop trigger messages_search_after_update;
drop trigger messages_search_after_delete;
drop table search_dirty;
drop table search_epoch;

create virtual table messages_fts using fts5 (
    body,
    content = 'messages',
    content_rowid = 'num'
);

create trigger messages_fts_after_insert after insert on messages begin
    insert into messages_fts (rowid, body) values (new.num, new.body);
end;

create trigger messages_fts_after_delete after delete on messages begin
    insert into messages_fts (messages_fts, rowid, body) values ('delete', old.num, old.body);
end;

create trigger messages_fts_after_update after update of body on messages begin
    insert into messages_fts (messages_fts, rowid, body) values ('delete', old.num, old.body);
    insert into messages_fts (rowid, body) values (new.num, new.body);
end;

insert into messages_fts (messages_fts) values ('rebuild');
