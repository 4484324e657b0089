-- reports of users by users, for the moderators' queue. a report outlives
-- the message it names (no foreign key: a deleted message keeps its id, and
-- the report is evidence); it goes with either account.
create table reports (
    id text collate "C" not null primary key,
    reporter_id text collate "C" not null references users (id) on delete cascade,
    reported_id text collate "C" not null references users (id) on delete cascade,
    -- spam, abuse, harassment or other (the rust enum rejects others on read)
    reason text not null,
    message_id text collate "C",
    details text,
    -- open until a moderator acts on it
    status text not null default 'open',
    created_at bigint not null
);

-- the queue: open reports, oldest or newest first
create index reports_status_created_at_idx on reports (status, created_at);
-- a reported user's reports
create index reports_reported_id_idx on reports (reported_id);
