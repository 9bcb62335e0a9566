-- Searching serials by substring at fleet size: a trigram index (FTS5) over
-- devices.serial, kept by triggers. The store uses it for searches of three
-- characters or more that match few devices; see SqliteStore::devices.
create virtual table devices_search using fts5 (
    serial,
    content = 'devices',
    content_rowid = 'id',
    tokenize = 'trigram'
);

insert into devices_search (devices_search) values ('rebuild');

create trigger devices_search_insert after insert on devices begin
    insert into devices_search (rowid, serial) values (new.id, new.serial);
end;

create trigger devices_search_delete after delete on devices begin
    insert into devices_search (devices_search, rowid, serial) values ('delete', old.id, old.serial);
end;

create trigger devices_search_update after update of serial on devices begin
    insert into devices_search (devices_search, rowid, serial) values ('delete', old.id, old.serial);
    insert into devices_search (rowid, serial) values (new.id, new.serial);
end;
